//! The middleware that refuses penalised addresses before their credentials are checked.

use axum::extract::Request;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Admission, Refusal};

/// Answers `429 Too Many Requests` (with `Retry-After` in seconds) to a request whose
/// connection's address is penalised, without looking at its credentials. Requests without
/// an [`Admission`] ticket (a router served by something other than [`Server`]) pass.
///
/// [`Server`]: crate::Server
///
/// ```
/// use axum::{Router, middleware, routing::get};
/// let app: Router = Router::new()
///     .route("/session", get(|| async { "hi" }))
///     .layer(middleware::from_fn(distio_serve::admission::require_unpenalised));
/// # drop(app);
/// ```
pub async fn require_unpenalised(request: Request, next: Next) -> Response {
    let penalty = request
        .extensions()
        .get::<Admission>()
        .and_then(|ticket| Some((ticket, ticket.penalty()?)));
    match penalty {
        Some((ticket, left)) => {
            ticket.refused(Refusal::Penalised, None);
            let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(RETRY_AFTER, HeaderValue::from(seconds))],
            )
                .into_response()
        }
        None => next.run(request).await,
    }
}
