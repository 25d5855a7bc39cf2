//! The server's settings and the builder that sets them.

use axum::Router;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::{Server, ServerError};

/// What wraps the router before it serves (the auth middleware, say).
pub(crate) type RouterMap = Box<dyn FnOnce(Router) -> Router + Send>;

/// Everything the server is configured with. See [`ServerBuilder`] for each setting.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) address: IpAddr,
    pub(crate) port: u16,
    pub(crate) root: PathBuf,
    pub(crate) interpreters: BTreeMap<String, PathBuf>,
    pub(crate) max_concurrent_slaves: usize,
    pub(crate) queue_limit: usize,
    pub(crate) queue_timeout: Duration,
    pub(crate) kill_slaves_after: Option<Duration>,
    pub(crate) kill_grace: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_misses: u32,
    pub(crate) shutdown_grace: Duration,
    pub(crate) max_frame_len: usize,
    pub(crate) server_name: String,
    pub(crate) max_channels_per_session: usize,
    pub(crate) open_timeout: Duration,
    pub(crate) outbox_limit: usize,
    pub(crate) slave_inbox_limit: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 1337,
            root: PathBuf::from("."),
            interpreters: BTreeMap::new(),
            max_concurrent_slaves: 64,
            queue_limit: 256,
            queue_timeout: Duration::from_secs(60),
            kill_slaves_after: None,
            kill_grace: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_misses: 3,
            shutdown_grace: Duration::from_secs(10),
            max_frame_len: distio_proto::DEFAULT_MAX_FRAME_LEN,
            server_name: host_name(),
            max_channels_per_session: 1024,
            open_timeout: Duration::from_secs(10),
            outbox_limit: 8 << 20,
            slave_inbox_limit: 8 << 20,
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "distio-serve".to_owned())
}

/// Configures and starts a [`Server`]. Every setting has a safe default: bind 127.0.0.1,
/// port 1337, the working directory as root, no interpreters (only executable files run).
///
/// ```no_run
/// use distio_serve::Server;
/// use std::time::Duration;
/// # async fn run() -> Result<(), distio_serve::ServerError> {
/// let server = Server::builder()
///     .address("0.0.0.0".parse().unwrap())
///     .port(1337)
///     .root("/srv/slaves")
///     .interpreter("py", "/usr/bin/python3")
///     .max_concurrent_slaves(32)
///     .queue_limit(100)
///     .queue_timeout(Duration::from_secs(30))
///     .heartbeat(Duration::from_secs(5), 3)
///     .build()
///     .await?;
/// # drop(server);
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until `build` is awaited"]
#[derive(Default)]
pub struct ServerBuilder {
    pub(crate) settings: Settings,
    pub(crate) router_map: Option<RouterMap>,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("settings", &self.settings)
            .field("router_map", &self.router_map.is_some())
            .finish()
    }
}

impl ServerBuilder {
    /// The address to listen on (default 127.0.0.1).
    pub fn address(mut self, address: IpAddr) -> Self {
        self.settings.address = address;
        self
    }

    /// The port to listen on (default 1337; 0 picks a free one, see
    /// [`Server::local_addr`]).
    pub fn port(mut self, port: u16) -> Self {
        self.settings.port = port;
        self
    }

    /// The directory scripts are found under, which is also their working directory
    /// (default: the working directory).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.settings.root = root.into();
        self
    }

    /// Runs scripts whose name ends in `.{extension}` with `program` (the script's path
    /// is its first argument). Other scripts must be executable files.
    pub fn interpreter(
        mut self,
        extension: impl Into<String>,
        program: impl Into<PathBuf>,
    ) -> Self {
        let extension = extension.into();
        let extension = extension.trim_start_matches('.').to_owned();
        self.settings.interpreters.insert(extension, program.into());
        self
    }

    /// How many slaves run at once across all sessions (default 64, at least 1); spawns
    /// beyond wait in a FIFO queue.
    pub fn max_concurrent_slaves(mut self, max: usize) -> Self {
        self.settings.max_concurrent_slaves = max.max(1);
        self
    }

    /// How many spawns may wait for a place (default 256); beyond, a spawn fails with
    /// "queue full".
    pub fn queue_limit(mut self, limit: usize) -> Self {
        self.settings.queue_limit = limit;
        self
    }

    /// How long a spawn may wait for a place (default 60 s).
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.settings.queue_timeout = timeout;
        self
    }

    /// Ends a slave that runs longer than this (SIGTERM, then SIGKILL after the
    /// [`kill_grace`](Self::kill_grace)); `None` (the default) lets slaves live.
    pub fn kill_slaves_after(mut self, limit: Option<Duration>) -> Self {
        self.settings.kill_slaves_after = limit;
        self
    }

    /// How long a slave being ended has between SIGTERM and SIGKILL (default 5 s).
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.settings.kill_grace = grace;
        self
    }

    /// A session is pinged every `interval` and ended when nothing arrived for
    /// `interval × misses` (default 10 s × 3).
    pub fn heartbeat(mut self, interval: Duration, misses: u32) -> Self {
        self.settings.heartbeat_interval = interval;
        self.settings.heartbeat_misses = misses.max(1);
        self
    }

    /// How long [`Server::run`] takes at most to end every session and slave once
    /// shutdown is asked for (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace = grace;
        self
    }

    /// The longest slave frame relayed either way (default
    /// [`DEFAULT_MAX_FRAME_LEN`](distio_proto::DEFAULT_MAX_FRAME_LEN)); a slave writing a
    /// longer one is killed, a master sending one breaks the protocol.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.settings.max_frame_len = max.clamp(1, u32::MAX as usize);
        self
    }

    /// The name the server gives in its welcome (default: the host name).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.settings.server_name = name.into();
        self
    }

    /// How many slaves one session may have starting or running (default 1024).
    pub fn max_channels_per_session(mut self, max: usize) -> Self {
        self.settings.max_channels_per_session = max.max(1);
        self
    }

    /// How long a new session has to send its open frame (default 10 s).
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.settings.open_timeout = timeout;
        self
    }

    /// Most bytes waiting to be written to one session's WebSocket (default 8 MiB): a
    /// slave's frames wait for room; its output lines are dropped and counted.
    pub fn outbox_limit(mut self, bytes: usize) -> Self {
        self.settings.outbox_limit = bytes.clamp(1, u32::MAX as usize);
        self
    }

    /// Most bytes of frames waiting to be written to one slave's socket (default 8 MiB).
    pub fn slave_inbox_limit(mut self, bytes: usize) -> Self {
        self.settings.slave_inbox_limit = bytes.clamp(1, u32::MAX as usize);
        self
    }

    /// Wraps the server's router before it serves, e.g. to add authentication layers:
    /// `.map_router(|router| router.layer(my_layer))`. Called once, by
    /// [`build`](Self::build).
    pub fn map_router(mut self, map: impl FnOnce(Router) -> Router + Send + 'static) -> Self {
        let previous = self.router_map.take();
        self.router_map = Some(Box::new(move |router| {
            let router = match previous {
                Some(previous) => previous(router),
                None => router,
            };
            map(router)
        }));
        self
    }

    /// Checks the root and binds the listening socket.
    pub async fn build(self) -> Result<Server, ServerError> {
        let mut settings = self.settings;
        settings.root = tokio::fs::canonicalize(&settings.root)
            .await
            .and_then(|root| {
                if root.is_dir() {
                    Ok(root)
                } else {
                    Err(std::io::Error::other("it is not a directory"))
                }
            })
            .map_err(|source| ServerError::Root {
                path: settings.root.clone(),
                source,
            })?;
        let address = SocketAddr::new(settings.address, settings.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Bind {
                address: address.to_string(),
                source,
            })?;
        Server::new(listener, settings, self.router_map)
    }
}
