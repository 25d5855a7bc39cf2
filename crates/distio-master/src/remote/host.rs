//! Where a remote slave runs: a `distio-serve` URL and the credentials for it.

use std::fmt;
use std::sync::Arc;

use distio_proto::remote::passphrase::Passphrase;

use super::link_settings::LinkSettings;
use super::tls::ClientTls;
use crate::MasterError;

/// The port `distio-serve` listens on unless told otherwise.
pub const DEFAULT_SERVE_PORT: u16 = 1337;

/// The path of the session route on a `distio-serve` host.
pub(crate) const SESSION_PATH: &str = "/session";

/// A `distio-serve` host: `ws://[user:password@]host[:port]`, as a master connects to it.
///
/// A bare `host:port` (the original library's form) means `ws://host:port`; the port
/// defaults to [`DEFAULT_SERVE_PORT`]. Credentials come from the URL (percent-decoded) or
/// from [`SpawnOptions::credentials`](crate::SpawnOptions::credentials). `Display` never
/// shows the password.
///
/// A `wss://` host is reached over TLS, verified against the system's root certificates
/// unless [`with_tls`](Self::with_tls) gives another [`ClientTls`].
///
/// ```
/// use distio_master::Host;
/// let host = Host::parse("ws://ops:s3cret@build-7:4000")?;
/// assert_eq!(host.to_string(), "ws://ops@build-7:4000");
/// assert_eq!(Host::parse("localhost:3000")?.to_string(), "ws://localhost:3000");
/// assert!(Host::parse("ftp://x").is_err());
/// # Ok::<(), distio_master::MasterError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Host {
    pub(crate) secure: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) tls: Option<ClientTls>,
    /// Shared by clones, so the key derived from it is cached once.
    pub(crate) passphrase: Option<Arc<Passphrase>>,
    pub(crate) link: LinkSettings,
}

impl Host {
    /// Parses a host URL.
    pub fn parse(text: &str) -> Result<Host, MasterError> {
        let bad = |reason: &str| MasterError::HostUrl {
            url: redact(text),
            reason: reason.to_owned(),
        };
        let full = if text.contains("://") {
            text.to_owned()
        } else {
            format!("ws://{text}")
        };
        let url = url::Url::parse(&full).map_err(|err| bad(&err.to_string()))?;
        let secure = match url.scheme() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            other => {
                return Err(bad(&format!(
                    "the scheme {other}:// is not ws:// or wss://"
                )));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a host URL has no path, query or fragment"));
        }
        let decode = |part: &str| {
            percent_decode(part).ok_or_else(|| bad("its user or password is not valid UTF-8"))
        };
        let user = match url.username() {
            "" => None,
            user => Some(decode(user)?),
        };
        let password = url.password().map(decode).transpose()?;
        Ok(Host {
            secure,
            host,
            port: url.port().unwrap_or(DEFAULT_SERVE_PORT),
            user,
            password,
            tls: None,
            passphrase: None,
            link: LinkSettings::default(),
        })
    }

    /// The host name or address.
    pub fn name(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name, if credentials are set.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// True for `wss://`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Sets the credentials (replacing any from the URL).
    #[must_use]
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }

    /// Sets how TLS is done with this host (its CA, a client certificate). Only a `wss://`
    /// host uses it; a `ws://` host given one fails to connect rather than go unencrypted.
    ///
    /// ```
    /// use distio_master::{ClientTls, Host};
    /// let host = Host::parse("wss://build-7:1337")?.with_tls(ClientTls::new().ca_file("ca.pem"));
    /// assert_eq!(host.tls(), Some(&ClientTls::new().ca_file("ca.pem")));
    /// # Ok::<(), distio_master::MasterError>(())
    /// ```
    #[must_use]
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS settings given with [`with_tls`](Self::with_tls), if any.
    pub fn tls(&self) -> Option<&ClientTls> {
        self.tls.as_ref()
    }

    /// Sets the passphrase of a server in passphrase mode (replacing any set before). The
    /// master proves it knows it without sending it, checks that the server knows it too,
    /// and seals the whole session with keys derived from it. Neither `Display` nor
    /// `Debug` shows it.
    ///
    /// ```
    /// use distio_master::Host;
    /// let host = Host::parse("ws://build-7:4000")?.with_passphrase("correct horse");
    /// assert!(host.has_passphrase());
    /// assert!(!format!("{host} {host:?}").contains("horse"));
    /// # Ok::<(), distio_master::MasterError>(())
    /// ```
    #[must_use]
    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(Arc::new(Passphrase::new(passphrase)));
        self
    }

    /// The same host, watched and resumed as `link` says (see [`LinkSettings`]).
    ///
    /// ```
    /// use distio_master::{Host, LinkSettings};
    /// use std::time::Duration;
    /// let host = Host::parse("ws://node1")?.with_link(LinkSettings {
    ///     resume_window: Duration::ZERO,
    ///     ..LinkSettings::default()
    /// });
    /// assert_eq!(host.link().resume_window, Duration::ZERO);
    /// # Ok::<(), distio_master::MasterError>(())
    /// ```
    #[must_use]
    pub fn with_link(mut self, link: LinkSettings) -> Self {
        self.link = link;
        self
    }

    /// How the session with this host is watched and resumed.
    pub fn link(&self) -> LinkSettings {
        self.link
    }

    /// True when a passphrase is set.
    pub fn has_passphrase(&self) -> bool {
        self.passphrase.is_some()
    }

    /// The session URL the master requests.
    pub(crate) fn session_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!(
            "{scheme}://{}:{}{SESSION_PATH}",
            self.bracketed(),
            self.port
        )
    }

    /// `host:port`, for connecting.
    pub(crate) fn authority(&self) -> String {
        format!("{}:{}", self.bracketed(), self.port)
    }

    fn bracketed(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(f, "{}:{}", self.bracketed(), self.port)
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls {
            Some(tls) => write!(f, "Host({self}, {tls:?})"),
            None => write!(f, "Host({self})"),
        }
    }
}

/// A URL as text with its password hidden, for errors.
fn redact(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let userinfo = &text[start + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &text[..start + 3], &text[at..]),
                None => text.to_owned(),
            }
        }
        (None, Some(at)) => match text[..at].split_once(':') {
            Some((user, _)) => format!("{user}:***{}", &text[at..]),
            None => text.to_owned(),
        },
        _ => text.to_owned(),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_credentials() {
        let h = Host::parse("ws://a%40b:p%3Aw@example.org").unwrap();
        assert_eq!(h.user(), Some("a@b"));
        assert_eq!(h.password.as_deref(), Some("p:w"));
        assert_eq!(h.port(), DEFAULT_SERVE_PORT);
        assert_eq!(h.session_url(), "ws://example.org:1337/session");
        let v6 = Host::parse("ws://[::1]:9").unwrap();
        assert_eq!(v6.name(), "::1");
        assert_eq!(v6.authority(), "[::1]:9");
        assert!(Host::parse("http://h:1").is_ok());
        assert!(Host::parse("wss://h").unwrap().is_secure());
    }

    #[test]
    fn bad_urls_are_refused_without_showing_the_password() {
        for bad in [
            "ftp://u:secret@h",
            "ws://u:secret@h/x",
            "ws://",
            "u:secret@",
        ] {
            let err = Host::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
        let shown = Host::parse("ws://u:secret@h").unwrap();
        assert!(!format!("{shown} {shown:?}").contains("secret"));
    }
}
