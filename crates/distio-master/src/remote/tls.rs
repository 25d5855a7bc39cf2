//! TLS for `wss://` hosts: how the master verifies the server, and the client certificate
//! it may present (rustls on its `ring` provider).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::MasterError;

/// How the master talks TLS to a `wss://` host: which certificate authorities it trusts
/// and, for servers that ask for one (mutual TLS), the certificate it presents.
///
/// By default the server is verified against the system's root certificates; a host with a
/// private CA needs [`ca_file`](Self::ca_file). The files are read when a session is
/// opened, so a bad file fails the spawn with [`MasterError::TlsFile`] naming it.
/// Two hosts with the same URL but different `ClientTls` are different sessions.
///
/// ```
/// use distio_master::{ClientTls, Host, SpawnOptions};
/// let tls = ClientTls::new()
///     .ca_file("/etc/distio/ca.pem")
///     .client_cert("/etc/distio/master.pem", "/etc/distio/master.key");
/// let host = Host::parse("wss://build-7:1337")?.with_tls(tls.clone());
/// assert!(host.is_secure());
/// let options = SpawnOptions::remote("wss://build-7:1337", "square.sh").tls(tls);
/// # drop(options);
/// # Ok::<(), distio_master::MasterError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientTls {
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// Verify servers against the system's root certificates; present no client
    /// certificate.
    ///
    /// ```
    /// let tls = distio_master::ClientTls::new();
    /// assert_eq!(tls, distio_master::ClientTls::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust only the certificate authorities in this PEM file (instead of the system's
    /// roots).
    ///
    /// ```
    /// let tls = distio_master::ClientTls::new().ca_file("ca.pem");
    /// # drop(tls);
    /// ```
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Present this certificate chain (PEM) and its private key (PEM: PKCS#8, PKCS#1 or
    /// SEC1) to servers that ask for one.
    ///
    /// ```
    /// let tls = distio_master::ClientTls::new().client_cert("master.pem", "master.key");
    /// # drop(tls);
    /// ```
    #[must_use]
    pub fn client_cert(mut self, chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some((chain.into(), key.into()));
        self
    }

    /// The rustls configuration: the files read and checked now.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, MasterError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|err| MasterError::TlsFile {
                        path: path.clone(),
                        reason: format!("a certificate in it cannot be used as a CA: {err}"),
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(MasterError::TlsNoRoots);
                }
            }
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| MasterError::TlsSetup {
                reason: err.to_string(),
            })?
            .with_root_certificates(roots);
        let config = match &self.client_cert {
            Some((chain_path, key_path)) => {
                let chain = read_certs(chain_path)?;
                let key =
                    PrivateKeyDer::from_pem_file(key_path).map_err(|err| MasterError::TlsFile {
                        path: key_path.clone(),
                        reason: pem_reason(&err, "private key"),
                    })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| MasterError::TlsFile {
                        path: key_path.clone(),
                        reason: format!(
                            "the key does not fit the certificate chain {}: {err}",
                            chain_path.display()
                        ),
                    })?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// Every certificate of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, MasterError> {
    let bad = |reason: String| MasterError::TlsFile {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| bad(pem_reason(&err, "certificate")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| bad(pem_reason(&err, "certificate")))?;
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// What is wrong with a PEM file, without its content.
fn pem_reason(err: &rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error;
    match err {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => format!("it holds no PEM {what}"),
        _ => format!("it is not a valid PEM {what} file"),
    }
}

/// What a TLS failure means for the user, from the error rustls gave (inside an I/O error).
pub(crate) fn tls_failure(host: &str, err: &std::io::Error) -> Option<MasterError> {
    use rustls::{AlertDescription, CertificateError, Error};
    let rustls_err = err.get_ref()?.downcast_ref::<Error>()?;
    let host = host.to_owned();
    Some(match rustls_err {
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => MasterError::TlsUnknownCa { host },
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => MasterError::TlsNameMismatch { host },
        Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown,
        ) => MasterError::TlsClientCertRefused { host },
        other => MasterError::TlsHandshake {
            host,
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let err = ClientTls::new()
            .ca_file("/no/such/ca.pem")
            .client_config()
            .unwrap_err();
        assert!(err.to_string().contains("/no/such/ca.pem"), "{err}");
    }

    #[test]
    fn a_file_without_pem_is_refused() {
        let dir = std::env::temp_dir().join(format!("distio-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = ClientTls::new().ca_file(&path).client_config().unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
