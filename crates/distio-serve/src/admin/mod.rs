//! Operating a running server: health and metrics over HTTP, and the operator's control
//! socket.
//!
//! - The **admin listener** (`admin_bind`, `admin_port`; default `127.0.0.1:9337`,
//!   `admin_port = 0` turns it off) is a plain HTTP server of its own, apart from the
//!   session port: `GET /healthz` (200 while the process serves), `GET /readyz` (200
//!   while sessions are accepted, 503 once the server drains or stops) and
//!   `GET /metrics` (the Prometheus/OpenMetrics text format, see [`Metrics`]).
//! - The **control socket** (`control_socket`; default `$RUNTIME_DIRECTORY/control.sock`
//!   under systemd, else `/run/distio-serve/control.sock` as root, else
//!   `$XDG_RUNTIME_DIR/distio-serve/control.sock`) takes one JSON request line and
//!   answers one JSON line; `distio-serve status|list|kill|drain` ([`AdminCommand`]) are
//!   its clients. Who may use it is decided by its file permissions (socket 0660,
//!   directory 0750).
//!
//! [`Admin`] is what the server shares with both: the metrics, the live sessions and
//! slaves, and whether it drains. [`start`] starts both services for a server.
//!
//! ```no_run
//! # async fn run() -> Result<(), distio_serve::ServeError> {
//! let config = distio_serve::ServeConfig::default();
//! let server = distio_serve::ServerBuilder::from_config(&config).build().await?;
//! let admin = distio_serve::admin::start(&config, server.state(), server.shutdown_handle()).await?;
//! println!("probes on {:?}", admin.http_addr());
//! server.run().await?;
//! admin.stop().await;
//! # Ok(())
//! # }
//! ```

mod client;
mod control;
mod http;
mod layer;
mod metrics;
mod procstat;
mod registry;
mod table;

pub use client::{AdminCommand, ClientOptions, run_command};
pub use control::{ControlRequest, ControlResponse, SocketPath, StatusView, control_socket_path};
pub use http::{router, serve_http};
pub use layer::session_gate;
pub use metrics::{AuthRefusal, Metrics};
pub use registry::{SessionEntry, SessionView, SlaveView};

pub(crate) use registry::SlaveEntry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{ServeConfig, ServeError, ServerState, ShutdownHandle};
use registry::Registry;

/// The server's operator state: its metrics, its live sessions and slaves, and whether it
/// drains. One per server, in its [`ServerState`]; cheap to clone.
///
/// ```
/// let admin = distio_serve::admin::Admin::default();
/// assert!(!admin.draining());
/// assert!(admin.drain());
/// assert!(admin.draining());
/// assert!(!admin.drain(), "draining twice changes nothing");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Admin {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metrics: Metrics,
    registry: Registry,
    draining: watch::Sender<bool>,
    started: std::time::Instant,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            metrics: Metrics::new(),
            registry: Registry::default(),
            draining: watch::Sender::new(false),
            started: std::time::Instant::now(),
        }
    }
}

impl Admin {
    /// The server's metrics (to count what the server does, e.g.
    /// [`Metrics::auth_refused`]).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// How long since the server started.
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Whether the server drains: it takes no new sessions and stops when the last one
    /// ends.
    pub fn draining(&self) -> bool {
        *self.inner.draining.borrow()
    }

    /// Starts draining; true if this call started it. New sessions are refused (503)
    /// and `/readyz` answers 503 from now on.
    pub fn drain(&self) -> bool {
        let started = !self.inner.draining.send_replace(true);
        if started {
            let (sessions, slaves) = self.registry().counts();
            tracing::info!(
                sessions,
                slaves,
                "draining: no new sessions; the server stops when the last one ends"
            );
        }
        started
    }

    /// Changes to true when the server starts draining (e.g. to tell systemd it is
    /// stopping).
    pub fn draining_signal(&self) -> watch::Receiver<bool> {
        self.inner.draining.subscribe()
    }

    /// How many sessions are open now, as it changes.
    pub fn open_sessions(&self) -> watch::Receiver<usize> {
        self.registry().open_sessions()
    }

    /// Enters a new session (from `peer`, authenticated as `user`) in the registry and
    /// the metrics; it is removed when the entry is dropped.
    ///
    /// ```
    /// let admin = distio_serve::admin::Admin::default();
    /// let entry = admin.session_opened("127.0.0.1:5000".parse().unwrap(), Some("ops".into()));
    /// assert_eq!((entry.id(), entry.user()), (1, "ops"));
    /// assert_eq!(*admin.open_sessions().borrow(), 1);
    /// drop(entry);
    /// assert_eq!(*admin.open_sessions().borrow(), 0);
    /// ```
    pub fn session_opened(&self, peer: SocketAddr, user: Option<String>) -> SessionEntry {
        SessionEntry::new(self.clone(), peer, user)
    }

    /// Enters a started slave in the registry and counts the started spawn.
    pub(crate) fn slave_started(
        &self,
        server_id: u64,
        session: u64,
        script: &str,
        signaller: distio_master::hosted::Signaller,
    ) -> SlaveEntry {
        SlaveEntry::new(self.clone(), server_id, session, script, signaller)
    }
}

/// The admin services of a running server (the HTTP listener and the control socket),
/// started by [`start`]. [`stop`](Self::stop) ends them; dropping it without stopping
/// leaves the control socket file behind (it is then found stale and replaced at the
/// next start).
#[derive(Debug)]
pub struct AdminServices {
    http_addr: Option<SocketAddr>,
    control_path: Option<PathBuf>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl AdminServices {
    /// Where the admin HTTP listener listens (None when `admin_port = 0`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The control socket's path (None when `control_socket = "off"`).
    pub fn control_path(&self) -> Option<&std::path::Path> {
        self.control_path.as_deref()
    }

    /// Stops both services, waits for their tasks and removes the control socket.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.tasks.wait()).await;
        if let Some(path) = &self.control_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts the admin HTTP listener and the control socket of the server whose state and
/// shutdown handle are given, as `config` says (`admin_bind`, `admin_port`,
/// `control_socket`).
///
/// Fails with [`ServeError::AdminBind`] when the admin address cannot be listened on and
/// with [`ServeError::ControlSocket`], [`ServeError::ControlPathTaken`] or
/// [`ServeError::ControlInUse`] when the control socket cannot be created (it cannot be
/// bound, its path is taken by something that is not a stale socket, or another server
/// answers on it).
pub async fn start(
    config: &ServeConfig,
    state: ServerState,
    stop: ShutdownHandle,
) -> Result<AdminServices, ServeError> {
    let tasks = TaskTracker::new();
    let cancel = CancellationToken::new();
    let http_addr = if config.admin_port == 0 {
        None
    } else {
        let addr = SocketAddr::new(config.admin_bind, config.admin_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::AdminBind { addr, source })?;
        let addr = listener.local_addr().unwrap_or(addr);
        if !addr.ip().to_canonical().is_loopback() {
            tracing::warn!(
                %addr,
                "the admin endpoints have no authentication: let only your probes and monitoring reach {addr}"
            );
        }
        let until = cancel.clone().cancelled_owned();
        tasks.spawn(serve_http(listener, state.clone(), until));
        tracing::info!(%addr, "admin endpoints: /healthz /readyz /metrics");
        Some(addr)
    };
    let control_path = match control_socket_path(config.control_socket.as_deref()) {
        control::SocketPath::Off => None,
        control::SocketPath::Unknown => {
            tracing::warn!(
                "no control socket: neither RUNTIME_DIRECTORY nor XDG_RUNTIME_DIR is set and the \
                 server does not run as root; set `control_socket` to use `distio-serve list`"
            );
            None
        }
        control::SocketPath::At(path) => {
            let listener = control::bind(&path)?;
            tasks.spawn(control::serve(
                listener,
                state,
                stop,
                tasks.clone(),
                cancel.clone(),
            ));
            tracing::info!(path = %path.display(), "control socket");
            Some(path)
        }
    };
    Ok(AdminServices {
        http_addr,
        control_path,
        tasks,
        cancel,
    })
}
