//! The server: its configuration, its router, its sessions and the slaves they start.

mod builder;
mod lifetime;
mod listener;
mod load;
mod outbox;
mod output;
mod passphrase;
mod relay;
mod resume;
pub(crate) mod script;
mod session;
mod slave;
mod slots;
mod state;

pub use builder::ServerBuilder;
pub use state::ServerState;

use axum::Extension;
use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

use crate::admission::{Admission, Gate, Refusal};
use crate::{ServeError, ServerTls};
use builder::{RouterMap, Settings};
use distio_proto::remote::passphrase::PassphraseKey;

/// The path of the session route.
const SESSION_PATH: &str = "/session";

/// A bound server, ready to [`run`](Self::run). Made by [`Server::builder`].
///
/// ```no_run
/// # async fn run() -> Result<(), distio_serve::ServeError> {
/// let server = distio_serve::Server::builder().port(0).build().await?;
/// let addr = server.local_addr();
/// let stop = server.shutdown_handle();
/// let running = tokio::spawn(server.run());
/// // ... masters connect to ws://{addr}/session ...
/// stop.shutdown();
/// running.await.unwrap()?;
/// # drop(addr);
/// # Ok(())
/// # }
/// ```
pub struct Server {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    state: ServerState,
    stop: ShutdownHandle,
    router_map: Option<RouterMap>,
    tls: Option<ServerTls>,
    gate: Gate,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A builder with the default settings.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    fn new(
        listener: tokio::net::TcpListener,
        settings: Settings,
        passphrase: Option<Arc<PassphraseKey>>,
        router_map: Option<RouterMap>,
        tls: Option<ServerTls>,
    ) -> Result<Self, ServeError> {
        let local_addr = listener.local_addr().map_err(ServeError::Serve)?;
        let admission = settings.admission.clone();
        let (stop, stopped) = watch::channel(false);
        let state = ServerState::new(settings, passphrase, stopped);
        let gate = Gate::new(admission).with_metrics(state.admin().metrics().clone());
        Ok(Server {
            listener,
            local_addr,
            state,
            stop: ShutdownHandle {
                stop: Arc::new(stop),
            },
            router_map,
            tls,
            gate,
        })
    }

    /// The address the server listens on (with the port picked when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's TLS setup, if it serves `wss://`: call [`ServerTls::reload`] on it to
    /// read its certificate and key again (the binary does on SIGHUP).
    ///
    /// ```no_run
    /// # async fn run(server: distio_serve::Server) {
    /// if let Some(tls) = server.tls() {
    ///     if let Err(err) = tls.reload() { eprintln!("{err}"); }
    /// }
    /// # }
    /// ```
    pub fn tls(&self) -> Option<ServerTls> {
        self.tls.clone()
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.stop.clone()
    }

    /// The server's shared state (for [`router`]).
    pub fn state(&self) -> ServerState {
        self.state.clone()
    }

    /// Serves until [`ShutdownHandle::shutdown`] is called; then stops accepting, tells
    /// every session the server is stopping, ends every slave (SIGTERM, then SIGKILL
    /// after the shorter of the kill grace and the shutdown grace) and returns once
    /// they are gone (at most about the shutdown grace later).
    pub async fn run(self) -> Result<(), ServeError> {
        let Server {
            listener,
            state,
            stop,
            router_map,
            tls,
            gate,
            ..
        } = self;
        let mut router = router(state.clone());
        if let Some(map) = router_map {
            router = map(router);
        }
        router = router.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::admin::session_gate,
        ));
        tracing::info!(
            address = %listener.local_addr().map_err(ServeError::Serve)?,
            root = %state.settings().root.display(),
            tls = tls.is_some(),
            mutual_tls = tls.as_ref().is_some_and(ServerTls::requires_client_cert),
            "serving sessions"
        );
        let serving = listener::Serving { router, gate, tls };
        listener::accept_loop(listener, serving, stop.stop.subscribe()).await;
        state.wait_sessions().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Stops a running [`Server`]. Cheap to clone.
///
/// ```no_run
/// # async fn run(server: distio_serve::Server) {
/// let stop = server.shutdown_handle();
/// tokio::spawn(async move {
///     tokio::signal::ctrl_c().await.ok();
///     stop.shutdown();
/// });
/// server.run().await.unwrap();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    stop: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    /// Asks the server to stop (see [`Server::run`]). Repeating it does nothing more.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

/// The server's routes: `GET /session`, the WebSocket upgrade of a session. The router
/// needs the peer's address: [`Server::run`] puts it (and the connection's
/// [`Admission`] ticket) into each request; served another way, use
/// `into_make_service_with_connect_info::<SocketAddr>()`. Layers (authentication, an
/// IP allowlist) go around it.
///
/// ```no_run
/// # async fn run(server: distio_serve::Server) {
/// let app = distio_serve::router(server.state());
/// # drop(app);
/// # }
/// ```
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route(SESSION_PATH, get(upgrade))
        .with_state(state)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    admission: Option<Extension<Admission>>,
    State(state): State<ServerState>,
    user: Option<axum::Extension<crate::AuthenticatedUser>>,
) -> Response {
    if state.stopping() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the server is stopping").into_response();
    }
    let ticket = admission.map(|Extension(ticket)| ticket);
    match (&ticket, state.passphrase().is_some()) {
        // Past the access layers: basic authentication (if configured) already called it.
        (Some(ticket), false) => ticket.authenticated(),
        // The passphrase handshake in the session settles the ticket; a penalised address
        // does not get to try.
        (Some(ticket), true) if ticket.penalty().is_some() => {
            ticket.refused(Refusal::Penalised, None);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed attempts; try later",
            )
                .into_response();
        }
        _ => {}
    }
    // A sealed record is the message it carries and its tag.
    let max = state.codec().max_message_len() + distio_proto::remote::passphrase::TAG_LEN;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let sessions = state.sessions();
            let user = user.map(|axum::Extension(crate::AuthenticatedUser(user))| user);
            sessions.track_future(session::run(socket, peer, user, ticket, state))
        })
}
