//! Who may open a session: the IP allowlist (403), then basic authentication (401).
//!
//! Both are axum middleware functions; [`Access::protect`] applies them in that order to a router,
//! with the [admission](crate::admission) check for penalised addresses (429) between them. Each
//! refusal and the successful check are reported to the connection's
//! [`Admission`](crate::Admission) ticket, which logs the refusal and counts failures.
//!
//! The allowlist matches the TCP peer's address (from the accept loop's `ConnectInfo`), never a
//! forwarded-for header.

mod allowlist;
mod basic;
mod cache;
mod hash;

use std::sync::Arc;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};

pub use allowlist::{Allowlist, require_allowed_peer};
pub(crate) use basic::ONE_OF;
pub use basic::{
    AuthFailure, AuthenticatedUser, CHALLENGE, Credentials, parse_basic_authorization,
    require_basic_auth,
};
pub use hash::{HashProblem, PasswordHash, hash_password_from};

use crate::admission::require_unpenalised;
use crate::{LoadedConfig, ServeError};

/// The access checks of a server: its allowlist and, if configured, its credentials.
///
/// ```no_run
/// use std::net::SocketAddr;
/// use axum::{Router, routing::get};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let loaded = distio_serve::load_from_args(std::env::args_os())?;
/// let access = distio_serve::Access::from_config(&loaded)?;
/// let app: Router = access.protect(Router::new().route("/session", get(|| async { "hi" })));
/// let listener = tokio::net::TcpListener::bind(loaded.config.socket_addr()).await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Access {
    /// Peers allowed to connect.
    pub allowlist: Arc<Allowlist>,
    /// Credentials required, if any.
    pub credentials: Option<Arc<Credentials>>,
}

impl Access {
    /// The checks a loaded configuration asks for.
    ///
    /// ```
    /// let loaded = distio_serve::load_from_args(["distio-serve"])?;
    /// let access = distio_serve::Access::from_config(&loaded)?;
    /// assert!(access.credentials.is_none());
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn from_config(loaded: &LoadedConfig) -> Result<Self, ServeError> {
        let credentials = match &loaded.config.basic_auth {
            Some(auth) => Some(Arc::new(Credentials::new(auth)?)),
            None => None,
        };
        match &credentials {
            Some(credentials) if credentials.is_hashed() => tracing::info!(
                user = credentials.username(),
                "basic authentication required (password hash from the configuration)"
            ),
            Some(credentials) => tracing::warn!(
                user = credentials.username(),
                "basic_auth.password is kept in plain text in the configuration; store its hash as basic_auth.password_hash instead (`distio-serve hash-password` prints it)"
            ),
            None => {}
        }
        Ok(Self {
            allowlist: Arc::new(loaded.allowlist.clone()),
            credentials,
        })
    }

    /// Wraps every route already on `router` in the checks: the allowlist first (403), then basic
    /// authentication (401). Add the routes before calling this.
    ///
    /// The allowlist needs the peer address, so serve the result with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// let access = distio_serve::Access {
    ///     allowlist: std::sync::Arc::new(distio_serve::Allowlist::parse(["127.0.0.1"])?),
    ///     credentials: None,
    /// };
    /// let app: Router = access.protect(Router::new().route("/session", get(|| async { "hi" })));
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn protect<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let router = match &self.credentials {
            Some(credentials) => router
                .layer(from_fn_with_state(credentials.clone(), require_basic_auth))
                // Runs before the credentials are looked at.
                .layer(from_fn(require_unpenalised)),
            None => router,
        };
        if self.allowlist.is_open() {
            router
        } else {
            // Added last, so it runs first.
            router.layer(from_fn_with_state(
                self.allowlist.clone(),
                require_allowed_peer,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BasicAuth;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use axum::{Extension, Router};
    use std::net::SocketAddr;
    use tower::ServiceExt;

    fn app(allow: &[&str]) -> Router {
        let access = Access {
            allowlist: Arc::new(Allowlist::parse(allow).unwrap()),
            credentials: Some(Arc::new(
                Credentials::new(&BasicAuth::with_password("ops", "pa:ss")).unwrap(),
            )),
        };
        access.protect(
            Router::new().route(
                "/session",
                get(
                    |Extension(AuthenticatedUser(user)): Extension<AuthenticatedUser>| async move {
                        user
                    },
                ),
            ),
        )
    }

    fn request(peer: &str, auth: Option<&str>) -> Request<Body> {
        let mut builder = Request::get("/session");
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        let mut request = builder.body(Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    // base64("ops:pa:ss")
    const GOOD: &str = "Basic b3BzOnBhOnNz";

    #[tokio::test]
    async fn allowed_peer_with_good_credentials_passes() {
        let response = app(&["127.0.0.1"])
            .oneshot(request("127.0.0.1:5000", Some(GOOD)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"ops");
    }

    #[tokio::test]
    async fn mapped_ipv6_peer_is_matched_as_ipv4() {
        let response = app(&["127.0.0.0/8"])
            .oneshot(request("[::ffff:127.0.0.1]:5000", Some(GOOD)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn disallowed_peer_gets_403_before_credentials_are_looked_at() {
        let response = app(&["10.0.0.1"])
            .oneshot(request("127.0.0.1:5000", None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[tokio::test]
    async fn missing_connect_info_fails_closed() {
        let mut req = request("127.0.0.1:1", Some(GOOD));
        req.extensions_mut().remove::<ConnectInfo<SocketAddr>>();
        let response = app(&["127.0.0.1"]).oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn bad_credentials_get_the_same_401() {
        for auth in [
            None,
            Some("Basic b3BzOnBh"),
            Some("Bearer x"),
            Some("Basic !!"),
            Some("Basic b3Bz"),
        ] {
            let response = app(&[])
                .oneshot(request("127.0.0.1:5000", auth))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], CHALLENGE);
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            assert!(body.is_empty(), "the body must not say what was wrong");
        }
    }
}
