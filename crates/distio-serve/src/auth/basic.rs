//! HTTP basic authentication, checked before the WebSocket upgrade.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ring::hmac;
use ring::rand::SystemRandom;
use tokio::sync::Semaphore;

use super::cache::VerifiedCache;
use super::hash::PasswordHash;
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
    /// Too many password-hash verifications were waiting: answered 503, not 401.
    Busy,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFailure::Missing => "no Authorization header",
            AuthFailure::NotBasic => "the Authorization header is not Basic",
            AuthFailure::BadBase64 => "the Basic credentials are not valid base64",
            AuthFailure::NoColon => "the Basic credentials have no colon",
            AuthFailure::WrongCredentials => "wrong user name or password",
            AuthFailure::Busy => "too many password checks were waiting",
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

/// How long a request waits for a turn to verify a password hash before it is answered
/// 503 (busy).
pub(crate) const HASH_WAIT: Duration = Duration::from_secs(3);

/// How the password is checked.
enum Check {
    /// A plain-text password from the configuration: its HMAC tag.
    Plain { password_tag: Vec<u8> },
    /// A PBKDF2 hash from the configuration.
    Hashed { hash: Arc<PasswordHash> },
}

/// The credentials the server expects: the user name kept only as an HMAC tag under a key
/// made fresh for each process, and the password as a tag too (plain-text configuration)
/// or as its PBKDF2 hash (`password_hash`).
///
/// Checking a hash is costly (about 0.3 s of CPU), so [`check`](Self::check) runs it on
/// a blocking thread, one or two at a time (a request that waits longer than 3 s gets
/// [`AuthFailure::Busy`]), and remembers credentials that passed for 5 minutes (a small
/// bounded cache keyed by an HMAC of what was presented). A wrong user name costs the same
/// hash verification as a wrong password, so neither the answer nor its timing tells
/// which was wrong.
///
/// ```
/// use distio_serve::{BasicAuth, Credentials};
/// let creds = Credentials::new(&BasicAuth::with_password("ops", "pw"))?;
/// assert!(creds.verify(b"ops", b"pw"));
/// assert!(!creds.verify(b"ops", b"PW"));
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
pub struct Credentials {
    username: String,
    key: hmac::Key,
    user_tag: Vec<u8>,
    check: Check,
    verified: Mutex<VerifiedCache>,
    hashing: Arc<Semaphore>,
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
    /// Fails if the configuration has neither or both of `password` and `password_hash`, if
    /// the hash is not valid, or if the system random number generator fails.
    pub fn new(auth: &BasicAuth) -> Result<Self, ServeError> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| ServeError::Random)?;
        let user_tag = hmac::sign(&key, auth.username.as_bytes()).as_ref().to_vec();
        let check = match (&auth.password, &auth.password_hash) {
            (Some(password), None) => Check::Plain {
                password_tag: hmac::sign(&key, password.expose().as_bytes())
                    .as_ref()
                    .to_vec(),
            },
            (None, Some(hash)) => Check::Hashed {
                hash: Arc::new(PasswordHash::parse(hash.expose()).map_err(|problem| {
                    ServeError::InvalidKey {
                        key: "basic_auth.password_hash".into(),
                        origin: "the configuration".into(),
                        reason: problem.to_string(),
                    }
                })?),
            },
            _ => {
                return Err(ServeError::InvalidKey {
                    key: "basic_auth".into(),
                    origin: "the configuration".into(),
                    reason: ONE_OF.into(),
                });
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            username: auth.username.clone(),
            key,
            user_tag,
            check,
            verified: Mutex::new(VerifiedCache::default()),
            // One core stays free for sessions on a small machine.
            hashing: Arc::new(Semaphore::new(if cpus > 2 { 2 } else { 1 })),
        })
    }

    /// The expected user name.
    ///
    /// ```
    /// # use distio_serve::{BasicAuth, Credentials};
    /// let creds = Credentials::new(&BasicAuth::with_password("ops", "pw"))?;
    /// assert_eq!(creds.username(), "ops");
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Whether the password is kept as a hash (`password_hash`) rather than in plain text.
    ///
    /// ```
    /// # use distio_serve::{BasicAuth, Credentials};
    /// let creds = Credentials::new(&BasicAuth::with_password("ops", "pw"))?;
    /// assert!(!creds.is_hashed());
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn is_hashed(&self) -> bool {
        matches!(self.check, Check::Hashed { .. })
    }

    /// Whether both the user name and the password match, compared in constant time; both are
    /// always checked, so the time taken does not tell which one was wrong. With a password
    /// hash this blocks for the hash's cost: async code uses [`check`](Self::check).
    ///
    /// ```
    /// # use distio_serve::{BasicAuth, Credentials};
    /// let creds = Credentials::new(&BasicAuth::with_password("ops", "pw"))?;
    /// assert!(!creds.verify(b"root", b"pw"));
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn verify(&self, username: &[u8], password: &[u8]) -> bool {
        let user_ok = hmac::verify(&self.key, username, &self.user_tag).is_ok();
        let password_ok = match &self.check {
            Check::Plain { password_tag } => {
                hmac::verify(&self.key, password, password_tag).is_ok()
            }
            // An unknown user costs the same verification as a known one.
            Check::Hashed { hash } => hash.verify(password),
        };
        user_ok & password_ok
    }

    /// Checks an `Authorization` header (or its absence). A password hash is verified on a
    /// blocking thread, behind a limit on how many run at once.
    ///
    /// ```
    /// # async fn run() -> Result<(), distio_serve::ServeError> {
    /// # use distio_serve::{BasicAuth, Credentials};
    /// use axum::http::HeaderValue;
    /// let creds = Credentials::new(&BasicAuth::with_password("ops", "pw"))?;
    /// // base64("ops:pw") = "b3BzOnB3"
    /// assert!(creds.check(Some(&HeaderValue::from_static("Basic b3BzOnB3"))).await.is_ok());
    /// assert!(creds.check(None).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn check(&self, header: Option<&HeaderValue>) -> Result<(), AuthFailure> {
        let header = header.ok_or(AuthFailure::Missing)?;
        let (user, password) = parse_basic_authorization(header.as_bytes())?;
        let Check::Hashed { hash } = &self.check else {
            return if self.verify(&user, &password) {
                Ok(())
            } else {
                Err(AuthFailure::WrongCredentials)
            };
        };
        let tag = self.presented_tag(&user, &password);
        if self.cache().contains(&tag, Instant::now()) {
            return Ok(());
        }
        let permit =
            match tokio::time::timeout(HASH_WAIT, self.hashing.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => return Err(AuthFailure::Busy),
            };
        let user_ok = hmac::verify(&self.key, &user, &self.user_tag).is_ok();
        let hash = Arc::clone(hash);
        // The permit is held until the verification ends, even if this request is dropped.
        let password_ok = tokio::task::spawn_blocking(move || {
            let ok = hash.verify(&password);
            drop(permit);
            ok
        })
        .await
        .unwrap_or(false);
        if user_ok & password_ok {
            self.cache().insert(tag, Instant::now());
            Ok(())
        } else {
            Err(AuthFailure::WrongCredentials)
        }
    }

    /// The cache key of presented credentials: an HMAC under the process's key.
    fn presented_tag(&self, user: &[u8], password: &[u8]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(b"verified\0");
        context.update(&(user.len() as u64).to_le_bytes());
        context.update(user);
        context.update(password);
        let mut tag = [0; 32];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, VerifiedCache> {
        self.verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a `basic_auth` section is refused when it has neither or both password keys.
pub(crate) const ONE_OF: &str = "it must have exactly one of `password` and `password_hash` (make a hash with `distio-serve hash-password`)";

/// The 401 response: the same for every failure, so it never tells which part was wrong.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE))],
    )
        .into_response()
}

/// The 503 response when password checks are saturated: try again shortly.
fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(RETRY_AFTER, HeaderValue::from_static("1"))],
    )
        .into_response()
}

/// Refuses (401 with `WWW-Authenticate: Basic realm="distio-serve"`) a request without the right
/// credentials; on success puts [`AuthenticatedUser`] into the request's extensions.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, middleware, routing::get};
/// use distio_serve::{BasicAuth, Credentials};
/// let creds = Arc::new(Credentials::new(&BasicAuth::with_password("ops", "pw"))?);
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
    match credentials
        .check(request.headers().get(AUTHORIZATION))
        .await
    {
        Ok(()) => {
            if let Some(ticket) = &ticket {
                ticket.authenticated();
            }
            request
                .extensions_mut()
                .insert(AuthenticatedUser(credentials.username().to_owned()));
            next.run(request).await
        }
        // Too many checks at once: not the client's fault, so no penalty.
        Err(AuthFailure::Busy) => busy(),
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

    fn header(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    fn creds() -> Credentials {
        Credentials::new(&BasicAuth::with_password("ops", "pa:ss")).unwrap()
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
        assert_eq!(c.verify_header(&ok), Ok(()));
        let wrong = HeaderValue::from_str(&header("ops:nope")).unwrap();
        assert_eq!(c.verify_header(&wrong), Err(AuthFailure::WrongCredentials));
    }

    impl Credentials {
        fn verify_header(&self, header: &HeaderValue) -> Result<(), AuthFailure> {
            let (u, p) = parse_basic_authorization(header.as_bytes())?;
            if self.verify(&u, &p) {
                Ok(())
            } else {
                Err(AuthFailure::WrongCredentials)
            }
        }
    }

    fn hashed() -> Credentials {
        let hash =
            PasswordHash::derive_with_salt(b"pa:ss", vec![1; 16], PasswordHash::MIN_ITERATIONS)
                .unwrap();
        let auth = BasicAuth::with_hash("ops", &hash);
        Credentials::new(&auth).unwrap()
    }

    #[tokio::test]
    async fn a_hashed_password_is_checked_and_remembered() {
        let c = hashed();
        assert!(c.is_hashed());
        let ok = HeaderValue::from_str(&header("ops:pa:ss")).unwrap();
        let tag = c.presented_tag(b"ops", b"pa:ss");
        assert!(!c.cache().contains(&tag, Instant::now()));
        assert_eq!(c.check(Some(&ok)).await, Ok(()));
        assert!(c.cache().contains(&tag, Instant::now()));
        assert_eq!(c.check(Some(&ok)).await, Ok(()));
        for wrong in ["ops:pa", "root:pa:ss", "OPS:pa:ss"] {
            let h = HeaderValue::from_str(&header(wrong)).unwrap();
            assert_eq!(
                c.check(Some(&h)).await,
                Err(AuthFailure::WrongCredentials),
                "{wrong}"
            );
        }
        assert!(c.verify(b"ops", b"pa:ss"));
        assert!(!c.verify(b"nobody", b"pa:ss"));
    }

    #[tokio::test]
    async fn a_saturated_hasher_answers_busy() {
        let c = hashed();
        // One permit on a small machine, two on a larger one: hold them all.
        let all = c.hashing.available_permits() as u32;
        let _held = c.hashing.clone().try_acquire_many_owned(all).unwrap();
        let h = HeaderValue::from_str(&header("ops:pa:ss")).unwrap();
        assert_eq!(c.check(Some(&h)).await, Err(AuthFailure::Busy));
    }

    #[test]
    fn neither_or_both_password_keys_are_refused() {
        let mut auth = BasicAuth::with_password("ops", "pw");
        auth.password_hash = Some(crate::Secret::new("x"));
        assert!(Credentials::new(&auth).is_err());
        auth.password = None;
        auth.password_hash = None;
        assert!(Credentials::new(&auth).is_err());
        auth.password_hash = Some(crate::Secret::new("$pbkdf2-sha256$i=1$a$b"));
        let err = Credentials::new(&auth).unwrap_err().to_string();
        assert!(
            err.contains("password_hash") && !err.contains("$a$b"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let text = format!("{:?}", creds());
        assert!(text.contains("ops") && !text.contains("pa:ss"), "{text}");
    }
}
