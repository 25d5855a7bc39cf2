//! HTTP basic authentication, checked before the WebSocket upgrade.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ring::hmac;
use ring::rand::SystemRandom;

use crate::admission::{Admission, Refusal};
use crate::{BasicAuth, ServeError};

/// The `WWW-Authenticate` challenge sent with every 401.
pub const CHALLENGE: &str = "Basic realm=\"distio-serve\"";

/// Standard base64, padding optional (some clients leave it out).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The user name a request was authenticated as; put into the request's extensions by
/// [`require_basic_auth`] for handlers and logs.
///
/// ```
/// use axum::Extension;
/// use distio_serve::AuthenticatedUser;
/// async fn handler(user: Option<Extension<AuthenticatedUser>>) -> String {
///     user.map_or_else(|| "anonymous".to_owned(), |Extension(AuthenticatedUser(name))| name)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser(pub String);

/// Why a request failed basic authentication: for logs only, never told to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// The header is not `Basic <base64>`.
    NotBasic,
    /// The base64 part does not decode.
    BadBase64,
    /// The decoded credentials have no `:` between user name and password.
    NoColon,
    /// The user name or the password is wrong.
    WrongCredentials,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFailure::Missing => "no Authorization header",
            AuthFailure::NotBasic => "the Authorization header is not Basic",
            AuthFailure::BadBase64 => "the Basic credentials are not valid base64",
            AuthFailure::NoColon => "the Basic credentials have no colon",
            AuthFailure::WrongCredentials => "wrong user name or password",
        })
    }
}

/// Splits an `Authorization` header value into user name and password.
///
/// The scheme is case-insensitive; the decoded text is split at its first colon, so a password
/// may contain colons. Neither part needs to be UTF-8.
///
/// ```
/// use distio_serve::auth::parse_basic_authorization;
/// // base64("ops:a:b") = "b3BzOmE6Yg=="
/// let (user, pass) = parse_basic_authorization(b"Basic b3BzOmE6Yg==")?;
/// assert_eq!((user.as_slice(), pass.as_slice()), (&b"ops"[..], &b"a:b"[..]));
/// # Ok::<(), distio_serve::auth::AuthFailure>(())
/// ```
pub fn parse_basic_authorization(value: &[u8]) -> Result<(Vec<u8>, Vec<u8>), AuthFailure> {
    let value = value.trim_ascii();
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => return Err(AuthFailure::NotBasic),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(AuthFailure::NotBasic);
    }
    let mut decoded = BASE64
        .decode(rest.trim_ascii())
        .map_err(|_| AuthFailure::BadBase64)?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or(AuthFailure::NoColon)?;
    let password = decoded.split_off(colon + 1);
    decoded.truncate(colon);
    Ok((decoded, password))
}

/// The credentials the server expects, kept only as HMAC tags under a key made fresh for each
/// process, so that checking them takes the same time whatever was sent.
///
/// ```
/// use distio_serve::{BasicAuth, Credentials, Secret};
/// let creds = Credentials::new(&BasicAuth { username: "ops".into(), password: Secret::new("pw") })?;
/// assert!(creds.verify(b"ops", b"pw"));
/// assert!(!creds.verify(b"ops", b"PW"));
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
pub struct Credentials {
    username: String,
    key: hmac::Key,
    user_tag: Vec<u8>,
    password_tag: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl Credentials {
    /// Prepares the configured credentials for checking.
    ///
    /// Fails only if the system random number generator does.
    pub fn new(auth: &BasicAuth) -> Result<Self, ServeError> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| ServeError::Random)?;
        let user_tag = hmac::sign(&key, auth.username.as_bytes()).as_ref().to_vec();
        let password_tag = hmac::sign(&key, auth.password.expose().as_bytes())
            .as_ref()
            .to_vec();
        Ok(Self {
            username: auth.username.clone(),
            key,
            user_tag,
            password_tag,
        })
    }

    /// The expected user name.
    ///
    /// ```
    /// # use distio_serve::{BasicAuth, Credentials, Secret};
    /// let creds = Credentials::new(&BasicAuth { username: "ops".into(), password: Secret::new("pw") })?;
    /// assert_eq!(creds.username(), "ops");
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Whether both the user name and the password match, compared in constant time; both are
    /// always checked, so the time taken does not tell which one was wrong.
    ///
    /// ```
    /// # use distio_serve::{BasicAuth, Credentials, Secret};
    /// let creds = Credentials::new(&BasicAuth { username: "ops".into(), password: Secret::new("pw") })?;
    /// assert!(!creds.verify(b"root", b"pw"));
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn verify(&self, username: &[u8], password: &[u8]) -> bool {
        let user_ok = hmac::verify(&self.key, username, &self.user_tag).is_ok();
        let password_ok = hmac::verify(&self.key, password, &self.password_tag).is_ok();
        user_ok & password_ok
    }

    /// Checks an `Authorization` header (or its absence).
    ///
    /// ```
    /// # use distio_serve::{BasicAuth, Credentials, Secret};
    /// use axum::http::HeaderValue;
    /// let creds = Credentials::new(&BasicAuth { username: "ops".into(), password: Secret::new("pw") })?;
    /// // base64("ops:pw") = "b3BzOnB3"
    /// assert!(creds.check(Some(&HeaderValue::from_static("Basic b3BzOnB3"))).is_ok());
    /// assert!(creds.check(None).is_err());
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn check(&self, header: Option<&HeaderValue>) -> Result<(), AuthFailure> {
        let header = header.ok_or(AuthFailure::Missing)?;
        let (user, password) = parse_basic_authorization(header.as_bytes())?;
        if self.verify(&user, &password) {
            Ok(())
        } else {
            Err(AuthFailure::WrongCredentials)
        }
    }
}

/// The 401 response: the same for every failure, so it never tells which part was wrong.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE))],
    )
        .into_response()
}

/// Refuses (401 with `WWW-Authenticate: Basic realm="distio-serve"`) a request without the right
/// credentials; on success puts [`AuthenticatedUser`] into the request's extensions.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, middleware, routing::get};
/// use distio_serve::{BasicAuth, Credentials, Secret};
/// let creds = Arc::new(Credentials::new(&BasicAuth { username: "ops".into(), password: Secret::new("pw") })?);
/// let app: Router = Router::new()
///     .route("/session", get(|| async { "hi" }))
///     .layer(middleware::from_fn_with_state(creds, distio_serve::auth::require_basic_auth));
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
pub async fn require_basic_auth(
    State(credentials): State<Arc<Credentials>>,
    mut request: Request,
    next: Next,
) -> Response {
    let ticket = request.extensions().get::<Admission>().cloned();
    match credentials.check(request.headers().get(AUTHORIZATION)) {
        Ok(()) => {
            if let Some(ticket) = &ticket {
                ticket.authenticated();
            }
            request
                .extensions_mut()
                .insert(AuthenticatedUser(credentials.username().to_owned()));
            next.run(request).await
        }
        Err(reason) => {
            match ticket {
                Some(ticket) => {
                    // The user name only (sanitized when logged); the password is dropped here.
                    let user = request
                        .headers()
                        .get(AUTHORIZATION)
                        .and_then(|value| parse_basic_authorization(value.as_bytes()).ok())
                        .map(|(user, _)| user);
                    let refusal = match reason {
                        AuthFailure::Missing => Refusal::Missing,
                        _ => Refusal::BadCredentials,
                    };
                    ticket.refused(refusal, user.as_deref());
                }
                None => {
                    let peer = request
                        .extensions()
                        .get::<ConnectInfo<SocketAddr>>()
                        .map(|c| c.0);
                    tracing::warn!(peer = ?peer, %reason, "connection refused: basic authentication failed");
                }
            }
            unauthorized()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn header(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    fn creds() -> Credentials {
        Credentials::new(&BasicAuth {
            username: "ops".into(),
            password: Secret::new("pa:ss"),
        })
        .unwrap()
    }

    #[test]
    fn splits_at_the_first_colon() {
        let (u, p) = parse_basic_authorization(header("ops:pa:ss").as_bytes()).unwrap();
        assert_eq!((u.as_slice(), p.as_slice()), (&b"ops"[..], &b"pa:ss"[..]));
        let (u, p) = parse_basic_authorization(header(":").as_bytes()).unwrap();
        assert!(u.is_empty() && p.is_empty());
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        assert!(parse_basic_authorization(b"bAsIc b3BzOnB3").is_ok());
        // base64("ops:p") = "b3BzOnA=" ; without padding:
        let (_, p) = parse_basic_authorization(b"Basic b3BzOnA").unwrap();
        assert_eq!(p, b"p");
    }

    #[test]
    fn bad_headers() {
        assert_eq!(
            parse_basic_authorization(b"Bearer abc"),
            Err(AuthFailure::NotBasic)
        );
        assert_eq!(
            parse_basic_authorization(b"Basic"),
            Err(AuthFailure::NotBasic)
        );
        assert_eq!(
            parse_basic_authorization(b"Basic !!!"),
            Err(AuthFailure::BadBase64)
        );
        assert_eq!(
            parse_basic_authorization(header("nocolon").as_bytes()),
            Err(AuthFailure::NoColon)
        );
    }

    #[test]
    fn verifies_both_parts() {
        let c = creds();
        assert!(c.verify(b"ops", b"pa:ss"));
        assert!(!c.verify(b"ops", b"pa"));
        assert!(!c.verify(b"ops:pa", b"ss"));
        assert!(!c.verify(b"", b""));
        let ok = HeaderValue::from_str(&header("ops:pa:ss")).unwrap();
        assert_eq!(c.check(Some(&ok)), Ok(()));
        let wrong = HeaderValue::from_str(&header("ops:nope")).unwrap();
        assert_eq!(c.check(Some(&wrong)), Err(AuthFailure::WrongCredentials));
    }

    #[test]
    fn debug_hides_the_password() {
        let text = format!("{:?}", creds());
        assert!(text.contains("ops") && !text.contains("pa:ss"), "{text}");
    }
}
