//! The admin layer around the session route: refuses new sessions while the server
//! drains, and counts the access checks' refusals.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AuthRefusal;
use crate::ServerState;

/// Middleware for the outside of the session router (around the access checks): while
/// the server drains, a new session is refused with 503; a 401 from basic authentication
/// is counted as an authentication refusal (`missing` without an `Authorization` header,
/// `bad_credentials` with one), a 403 from the allowlist as `not_allowed`.
///
/// ```no_run
/// # async fn run(server: distio_serve::Server) {
/// let state = server.state();
/// let app = distio_serve::router(state.clone())
///     .layer(axum::middleware::from_fn_with_state(state, distio_serve::admin::session_gate));
/// # drop(app);
/// # }
/// ```
pub async fn session_gate(
    State(state): State<ServerState>,
    request: Request,
    next: Next,
) -> Response {
    if state.admin().draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is draining: it takes no new sessions",
        )
            .into_response();
    }
    let had_credentials = request.headers().contains_key(header::AUTHORIZATION);
    // Served by `Server::run`, the connection's admission ticket counts its refusals.
    let counted = request
        .extensions()
        .get::<crate::admission::Admission>()
        .is_some();
    let response = next.run(request).await;
    if counted {
        return response;
    }
    let refusal = match response.status() {
        StatusCode::UNAUTHORIZED if had_credentials => Some(AuthRefusal::BadCredentials),
        StatusCode::UNAUTHORIZED => Some(AuthRefusal::Missing),
        StatusCode::FORBIDDEN => Some(AuthRefusal::NotAllowed),
        _ => None,
    };
    if let Some(reason) = refusal {
        state.admin().metrics().auth_refused(reason);
    }
    response
}
