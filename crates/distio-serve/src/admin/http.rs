//! The admin HTTP listener: `/healthz`, `/readyz`, `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::future::Future;

use crate::ServerState;

/// The content type of `/metrics` (prometheus-client writes OpenMetrics text, which
/// Prometheus reads).
const METRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The admin routes for a server: `GET /healthz` (200 `ok` while the process serves),
/// `GET /readyz` (200 `ready` while sessions are accepted; 503 `draining` or `stopping`)
/// and `GET /metrics`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), distio_serve::ServeError> {
/// use tower::ServiceExt;
/// let server = distio_serve::Server::builder()
///     .port(0)
/// #   .containment(distio_serve::Containment { allow_root_slaves: true, ..Default::default() })
///     .build()
///     .await?;
/// let app = distio_serve::admin::router(server.state());
/// let request = axum::http::Request::get("/readyz").body(axum::body::Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # Ok(())
/// # }
/// ```
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `until` completes.
///
/// ```no_run
/// # async fn run(server: distio_serve::Server) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9337").await?;
/// tokio::spawn(distio_serve::admin::serve_http(listener, server.state(), std::future::pending()));
/// # Ok(())
/// # }
/// ```
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    state: ServerState,
    until: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(err) = axum::serve(listener, router(state))
        .with_graceful_shutdown(until)
        .await
    {
        tracing::error!("the admin listener failed: {err}");
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    if state.stopping() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
    } else if state.admin().draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    let metrics = state.admin().metrics();
    let slots = state.slots();
    metrics.slaves_running.set(saturate(slots.running()));
    metrics.slaves_queued.set(saturate(slots.queued()));
    metrics.slaves_capacity.set(saturate(slots.capacity()));
    ([(header::CONTENT_TYPE, METRICS_TYPE)], metrics.encode())
}

fn saturate(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
