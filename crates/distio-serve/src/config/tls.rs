//! The `[tls]` table: the server's certificate chain and key, and the client CA for mutual TLS.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// TLS for the server's WebSocket sessions (`wss://`). Without it the server speaks plain
/// WebSockets, which it does on a non-loopback address only with `insecure_plaintext`.
///
/// The files are PEM: `cert` the certificate chain (the server's certificate first), `key`
/// its private key (PKCS#8, PKCS#1 or SEC1), `client_ca` the certificate authorities that
/// sign the client certificates masters must present (mutual TLS: a master without one is
/// refused in the handshake). They are read and checked at load; `cert` and `key` are read
/// again on SIGHUP.
///
/// ```
/// let config: distio_serve::ServeConfig = toml::from_str(
///     "[tls]\ncert = \"/etc/distio/cert.pem\"\nkey = \"/etc/distio/key.pem\"",
/// )?;
/// let tls = config.tls.unwrap();
/// assert_eq!(tls.cert, std::path::PathBuf::from("/etc/distio/cert.pem"));
/// assert!(tls.client_ca.is_none());
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The private key of the first certificate, PEM. Never printed; only its path is.
    pub key: PathBuf,
    /// Certificate authorities for client certificates, PEM. When set, every master must
    /// present a certificate one of them signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}
