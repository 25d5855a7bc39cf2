//! Remote slaves: sessions with `distio-serve` hosts, one per host, carrying every slave
//! the master runs there.
//!
//! - `host`: the host URL and its credentials.
//! - `link_settings`: [`LinkSettings`], the heartbeat and resume window of a session.
//! - `connect`: TCP, TLS for `wss://`, the WebSocket upgrade with basic auth, the session
//!   handshake.
//! - `tls`: [`ClientTls`], how the master verifies a `wss://` host and its client certificate.
//! - `passphrase`: the passphrase handshake (before the session's), and its records.
//! - `sessions`: the master's sessions by host, opened on first use.
//! - `session`: one session's reader and writer tasks, driving
//!   [`distio_proto::remote::ClientSession`].
//! - `channel`: one slave on a session — its frame stream, its end, its output.
//! - `outbox`: a remote slave's frames, encoded by their senders and queued for the session.
//! - `spawn`: asking a host for a slave.
//! - `loss`: why a host was lost, as a value.
//! - `slurm`: host names from a Slurm job's node list.

mod channel;
mod connect;
mod host;
mod link_settings;
mod loss;
mod outbox;
mod passphrase;
mod session;
mod sessions;
mod slurm;
mod spawn;
mod tls;

pub use connect::CONNECT_TIMEOUT;
pub use host::{DEFAULT_SERVE_PORT, Host};
pub use link_settings::LinkSettings;
pub use loss::{HostLoss, LossCause};
pub use slurm::{MAX_SLURM_HOSTS, NodelistProblem, expand_slurm_nodelist};
pub use tls::ClientTls;

pub(crate) use channel::{RemoteEnd, RemoteProcess};
pub(crate) use connect::connect;
pub(crate) use outbox::{RemoteOutbox, RemoteParts};
pub(crate) use session::Session;
pub(crate) use sessions::Sessions;
pub(crate) use spawn::{RemoteChild, spawn_remote};

/// A slave to start on a host: where, and which script.
#[derive(Clone, Debug)]
pub(crate) struct RemoteTarget {
    pub(crate) host: Host,
    pub(crate) script: String,
}

/// A remote spawn as the options hold it: the URL as given (parsed when spawning, so a
/// bad one is an error of the spawn), and credentials set apart from it.
#[derive(Clone)]
pub(crate) struct RemoteSpec {
    pub(crate) url: String,
    pub(crate) script: String,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) tls: Option<ClientTls>,
    /// Shared by the options' clones, so its derived key is cached once.
    pub(crate) passphrase: Option<std::sync::Arc<distio_proto::remote::passphrase::Passphrase>>,
    pub(crate) link: Option<LinkSettings>,
}

impl RemoteSpec {
    pub(crate) fn target(&self) -> Result<RemoteTarget, crate::MasterError> {
        let mut host = Host::parse(&self.url)?;
        if let Some((user, password)) = &self.credentials {
            host = host.with_credentials(user.clone(), password.clone());
        }
        if let Some(tls) = &self.tls {
            host = host.with_tls(tls.clone());
        }
        if let Some(passphrase) = &self.passphrase {
            host.passphrase = Some(std::sync::Arc::clone(passphrase));
        }
        if let Some(link) = self.link {
            host = host.with_link(link);
        }
        Ok(RemoteTarget {
            host,
            script: self.script.clone(),
        })
    }
}

impl std::fmt::Debug for RemoteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password, from the URL or set apart.
        let host = Host::parse(&self.url)
            .map(|h| h.to_string())
            .unwrap_or_else(|_| "<invalid host URL>".into());
        f.debug_struct("RemoteSpec")
            .field("host", &host)
            .field("script", &self.script)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("tls", &self.tls)
            .field("passphrase", &self.passphrase.is_some())
            .finish()
    }
}
