//! The server's TLS: its certificate chain and key (reloadable), and the client CA for
//! mutual TLS. rustls on its `ring` provider.
//!
//! [`ServerTls::load`] reads and checks the files of a [`TlsConfig`]; the server's accept
//! loop runs the handshake with [`ServerTls::acceptor`]. [`ServerTls::reload`] (the binary
//! calls it on SIGHUP) reads the certificate and key again and swaps them in for new
//! handshakes; sessions already open keep going. A reload that fails keeps the old pair.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::{ServeError, TlsProblem};

/// The server's TLS setup: cheap to clone, every clone sees a [`reload`](Self::reload).
///
/// ```no_run
/// use distio_serve::{ServerTls, TlsConfig};
/// let tls = ServerTls::load(&TlsConfig {
///     cert: "/etc/distio/cert.pem".into(),
///     key: "/etc/distio/key.pem".into(),
///     client_ca: None,
/// })?;
/// // ... later, on SIGHUP:
/// tls.reload()?;
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
#[derive(Clone)]
pub struct ServerTls {
    config: TlsConfig,
    current: Arc<ArcSwap<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths only: never key material.
        f.debug_struct("ServerTls")
            .field("cert", &self.config.cert)
            .field("key", &self.config.key)
            .field("client_ca", &self.config.client_ca)
            .finish()
    }
}

/// Hands rustls the current certificate for every handshake.
#[derive(Debug)]
struct Resolver(Arc<ArcSwap<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl ServerTls {
    /// Reads and checks the certificate chain, the key (it must be the key of the chain's
    /// first certificate) and the client CA, if any.
    ///
    /// Fails with [`ServeError::TlsFile`] naming the file and what is wrong with it.
    pub fn load(config: &TlsConfig) -> Result<Self, ServeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(config, &provider)?;
        let current = Arc::new(ArcSwap::from_pointee(key));
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| ServeError::TlsSetup(err.to_string()))?;
        let builder = match &config.client_ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path)? {
                    roots
                        .add(cert)
                        .map_err(|_| tls_file(path, TlsProblem::BadCa))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|err| ServeError::TlsSetup(err.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_cert_resolver(Arc::new(Resolver(Arc::clone(&current))));
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: config.clone(),
            current,
            provider,
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// Reads the certificate chain and key again and uses them for new handshakes.
    /// Connections already open are not touched. On failure the old pair stays and the
    /// error says why.
    pub fn reload(&self) -> Result<(), ServeError> {
        let key = certified_key(&self.config, &self.provider)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// Whether masters must present a client certificate (mutual TLS).
    ///
    /// ```no_run
    /// let tls = distio_serve::ServerTls::load(&distio_serve::TlsConfig {
    ///     cert: "/etc/distio/tls/cert.pem".into(),
    ///     key: "/etc/distio/tls/key.pem".into(),
    ///     client_ca: Some("/etc/distio/tls/clients-ca.pem".into()),
    /// })?;
    /// assert!(tls.requires_client_cert());
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn requires_client_cert(&self) -> bool {
        self.config.client_ca.is_some()
    }

    /// The acceptor for the accept loop.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

fn tls_file(path: &Path, problem: TlsProblem) -> ServeError {
    ServeError::TlsFile {
        path: path.to_owned(),
        problem,
    }
}

/// The chain and its key, checked to belong together.
fn certified_key(
    config: &TlsConfig,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, ServeError> {
    let chain = read_certs(&config.cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|err| tls_file(&config.key, pem_problem(err)))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| tls_file(&config.key, TlsProblem::UnsupportedKey))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        tls_file(
            &config.key,
            TlsProblem::KeyMismatch {
                cert: config.cert.clone(),
            },
        )
    })?;
    Ok(certified)
}

/// Every certificate of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| tls_file(path, pem_problem(err)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| tls_file(path, pem_problem(err)))?;
    if certs.is_empty() {
        return Err(tls_file(path, TlsProblem::NoPem));
    }
    Ok(certs)
}

fn pem_problem(err: rustls::pki_types::pem::Error) -> TlsProblem {
    use rustls::pki_types::pem::Error;
    match err {
        Error::Io(io) => TlsProblem::Unreadable(io.kind()),
        Error::NoItemsFound => TlsProblem::NoPem,
        _ => TlsProblem::NotPem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = std::env::temp_dir().join(format!("distio-serve-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let config = TlsConfig {
            cert: dir.join("missing.pem"),
            key: empty.clone(),
            client_ca: None,
        };
        let err = ServerTls::load(&config).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let config = TlsConfig {
            cert: empty.clone(),
            ..config
        };
        let err = ServerTls::load(&config).unwrap_err().to_string();
        assert!(err.contains("empty.pem") && err.contains("no PEM"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
