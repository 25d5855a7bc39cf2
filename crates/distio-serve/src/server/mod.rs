//! The server: its configuration, its router, its sessions and the slaves they start.

mod builder;
mod lifetime;
mod outbox;
mod output;
mod passphrase;
mod relay;
mod script;
mod session;
mod slave;
mod slots;
mod state;

pub use builder::ServerBuilder;
pub use state::ServerState;

use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

use crate::ServeError;
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
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
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
    ) -> Result<Self, ServeError> {
        let local_addr = listener.local_addr().map_err(ServeError::Serve)?;
        let (stop, stopped) = watch::channel(false);
        let state = ServerState::new(settings, passphrase, stopped);
        Ok(Server {
            listener,
            local_addr,
            state,
            stop: ShutdownHandle {
                stop: Arc::new(stop),
            },
            router_map,
        })
    }

    /// The address the server listens on (with the port picked when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
            ..
        } = self;
        let mut router = router(state.clone());
        if let Some(map) = router_map {
            router = map(router);
        }
        let mut stopped = stop.stop.subscribe();
        let until_stopped = async move {
            let _ = stopped.wait_for(|&stop| stop).await;
        };
        tracing::info!(
            address = %listener.local_addr().map_err(ServeError::Serve)?,
            root = %state.settings().root.display(),
            "serving sessions"
        );
        // Small frames (a response, a welcome) go out at once rather than waiting for
        // the peer's acknowledgement of the previous ones.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY on a session: {err}");
            }
        });
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(until_stopped)
        .await
        .map_err(ServeError::Serve)?;
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
/// needs the peer's address: serve it with
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
    State(state): State<ServerState>,
) -> Response {
    if state.stopping() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the server is stopping").into_response();
    }
    // A sealed record is the message it carries and its tag.
    let max = state.codec().max_message_len() + distio_proto::remote::passphrase::TAG_LEN;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let sessions = state.sessions();
            sessions.track_future(session::run(socket, peer, state))
        })
}
