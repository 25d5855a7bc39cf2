//! The one error type of this crate.

use distio_proto::{ProtoError, SlaveId, TaskError};
use std::path::PathBuf;
use std::time::Duration;

use crate::EndReason;

/// What can go wrong while spawning, addressing or talking to slaves.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterError {
    /// The slave program does not exist.
    #[error(
        "the slave program {path} does not exist; check the path (relative paths start from the master's working directory)"
    )]
    ProgramNotFound {
        /// The path given.
        path: PathBuf,
    },

    /// The slave program exists but cannot be executed.
    #[error("the slave program {path} is not an executable file; build it, or `chmod +x` it")]
    ProgramNotExecutable {
        /// The path given.
        path: PathBuf,
    },

    /// Starting the slave process failed.
    #[error("could not start the slave program {path}: {source}")]
    Spawn {
        /// The path given.
        path: PathBuf,
        /// Why the operating system refused.
        #[source]
        source: std::io::Error,
    },

    /// Creating the connection to a new slave failed.
    #[error("could not create the connection to a new slave: {0}")]
    Connection(#[source] std::io::Error),

    /// The alias belongs to a live slave already.
    #[error(
        "the alias \"{alias}\" already belongs to live slave #{owner}; aliases are unique among live slaves"
    )]
    AliasTaken {
        /// The alias asked for.
        alias: String,
        /// The live slave that has it.
        owner: SlaveId,
    },

    /// A target named no live slave.
    #[error("no live slave matches {target}")]
    NoSuchSlave {
        /// The target, as text.
        target: String,
    },

    /// The targets of a request matched no slave at all.
    #[error("the request has no slaves to go to: its targets matched none")]
    NoTargets,

    /// Request data could not be encoded.
    #[error("could not encode the request data: {0}")]
    Encode(#[source] ProtoError),

    /// A response value could not be decoded into the type asked for.
    #[error("could not decode the response value: {0}")]
    Decode(#[source] ProtoError),

    /// A request failed: returned as an error because catch-all was on, or because its
    /// value was asked for.
    #[error("task \"{task}\" on slave #{slave} failed ({}): {}", error.kind, error.message)]
    Task {
        /// The slave that was asked.
        slave: SlaveId,
        /// The task that was asked for.
        task: String,
        /// What went wrong.
        error: TaskError,
        /// Why, when the master failed the request because the slave was stopped or gone
        /// (see [`Response::end_reason`](crate::Response::end_reason)); `None` for an error
        /// the slave sent, or a timeout.
        end: Option<EndReason>,
    },

    /// A request's frame is larger than the frame limit.
    #[error("the request for task \"{task}\" is too large to send: {source}")]
    TooLarge {
        /// The task that was asked for.
        task: String,
        /// The size check that failed.
        #[source]
        source: ProtoError,
    },

    /// The slave ended (or failed its handshake) before it became ready, or did not
    /// finish its handshake in time.
    #[error("slave #{slave} never became ready: {}", not_ready(.end, *.limit))]
    NotReady {
        /// The slave.
        slave: SlaveId,
        /// Why it ended first; `None` if it was still starting when the wait ran out (it is
        /// left running: close or kill it if it should not stay).
        end: Option<EndReason>,
        /// How long the wait was.
        limit: Duration,
    },

    /// The slave can no longer be reached.
    #[error("slave #{slave} cannot be reached: it {end}")]
    Unavailable {
        /// The slave.
        slave: SlaveId,
        /// Why.
        end: EndReason,
    },

    /// A ping got no answer in time.
    #[error(
        "slave #{slave} did not answer a ping within {limit:?}: its serving loop is blocked or \
         its connection stalled; close or kill it if it stays so"
    )]
    PingTimedOut {
        /// The slave.
        slave: SlaveId,
        /// How long the ping waited.
        limit: Duration,
    },

    /// A host URL could not be used.
    #[error(
        "the host URL {url} cannot be used: {reason}; write it as ws://[user:password@]host[:port]"
    )]
    HostUrl {
        /// The URL, its password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Nothing listens on the host's port: the connection was refused.
    #[error(
        "nothing listens at {host} (the connection was refused): is distio-serve running \
         there, on that port?"
    )]
    HostNotListening {
        /// The host.
        host: String,
    },

    /// The master could not reach a host.
    #[error(
        "could not reach {host}: {reason}; check that distio-serve runs there, listens on that \
         address and port, and that no firewall is in the way"
    )]
    HostUnreachable {
        /// The host.
        host: String,
        /// What failed.
        reason: String,
    },

    /// The host refused the credentials (HTTP 401).
    #[error(
        "{host} refused the credentials (HTTP 401); give the user and password of its \
         basic_auth setting in the URL (ws://user:password@host) or with \
         SpawnOptions::credentials"
    )]
    HostUnauthorized {
        /// The host.
        host: String,
    },

    /// The host does not accept connections from this address (HTTP 403).
    #[error(
        "{host} does not accept connections from this machine's address (HTTP 403); add the \
         address or its network to the server's authorized_ips"
    )]
    HostForbidden {
        /// The host.
        host: String,
    },

    /// A TLS file the master was given (CA, client certificate or key) cannot be used.
    #[error(
        "cannot use the TLS file {}: {reason}; check the path given to ClientTls::ca_file or \
         ClientTls::client_cert",
        path.display()
    )]
    TlsFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
    },

    /// No system root certificates were found to verify a `wss://` host with.
    #[error(
        "no system root certificates were found to verify wss:// hosts with; install the \
         system's CA bundle (e.g. the ca-certificates package) or give the host's CA with \
         ClientTls::ca_file"
    )]
    TlsNoRoots,

    /// rustls refused the TLS configuration.
    #[error("cannot set up TLS: {reason}")]
    TlsSetup {
        /// rustls's reason.
        reason: String,
    },

    /// The host's certificate is not signed by a CA the master trusts.
    #[error(
        "{host} presented a certificate from a certificate authority this master does not \
         trust; give the CA that signed the server's certificate with ClientTls::ca_file"
    )]
    TlsUnknownCa {
        /// The host.
        host: String,
    },

    /// The host is in passphrase mode and the master has no passphrase for it.
    #[error(
        "{host} requires a passphrase; give it with Host::with_passphrase or \
         SpawnOptions::passphrase"
    )]
    HostNeedsPassphrase {
        /// The host.
        host: String,
    },

    /// The host's certificate is not valid for the host name in its URL.
    #[error(
        "{host} presented a certificate that is not valid for that host name; connect with a \
         name the certificate lists (its subject alternative names), or reissue the \
         certificate with this name"
    )]
    TlsNameMismatch {
        /// The host.
        host: String,
    },

    /// The host refused the master's passphrase.
    #[error(
        "{host} refused the passphrase; check that it is the one the server is configured with"
    )]
    HostRefusedPassphrase {
        /// The host.
        host: String,
    },

    /// The host refused the master in the TLS handshake: it needs a client certificate
    /// (mutual TLS) the master did not present or that its client CA did not sign.
    #[error(
        "{host} refused the TLS handshake because it needs a client certificate signed by its \
         client_ca; give one with ClientTls::client_cert"
    )]
    TlsClientCertRefused {
        /// The host.
        host: String,
    },

    /// The master has a passphrase for a host that has none.
    #[error(
        "{host} has no passphrase configured; remove the passphrase for this host, or \
         configure the same passphrase on the server"
    )]
    HostHasNoPassphrase {
        /// The host.
        host: String,
    },

    /// The TLS handshake with a host failed for another reason.
    #[error("the TLS handshake with {host} failed: {reason}")]
    TlsHandshake {
        /// The host.
        host: String,
        /// rustls's reason.
        reason: String,
    },

    /// The host did not prove that it knows the passphrase (or asked for a derivation
    /// outside the accepted bounds); nothing was sent to it.
    #[error(
        "{host} did not prove that it knows the passphrase ({reason}); it may not be the \
         server you meant to reach, so nothing was sent to it"
    )]
    HostNotAuthenticated {
        /// The host.
        host: String,
        /// What failed, as a value.
        reason: distio_proto::ProtoError,
    },

    /// The WebSocket upgrade or the session handshake with a host failed.
    #[error(
        "the session handshake with {host} failed: {reason}; is it a distio-serve of the same release?"
    )]
    HostHandshake {
        /// The host.
        host: String,
        /// What failed.
        reason: String,
    },

    /// The session with a host ended while the master needed it.
    #[error("lost {loss}; the slaves on it have ended, so start new ones (there or elsewhere)")]
    HostLost {
        /// Which host, and how.
        loss: crate::HostLoss,
    },

    /// A host did not start the slave it was asked for.
    #[error("{host} did not start {script}: {message}")]
    RemoteSpawn {
        /// The host.
        host: String,
        /// The script asked for.
        script: String,
        /// Why, as a value.
        kind: distio_proto::remote::SpawnFailure,
        /// Why, as the server said it.
        message: String,
    },

    /// A host did not answer a spawn in time.
    #[error(
        "{host} did not start {script} within {limit:?}; its spawn queue may be long, or the \
         server is overloaded"
    )]
    RemoteSpawnTimedOut {
        /// The host.
        host: String,
        /// The script asked for.
        script: String,
        /// How long the master waited.
        limit: Duration,
    },

    /// No host of a [`Cluster`](crate::Cluster) could start the slave: each is down or
    /// refused it.
    #[error(
        "no host of the cluster could start {script}: {}; start servers, raise their \
         capacity, or wait for a down host to come back",
        crate::cluster::HostRefusal::list(.refusals)
    )]
    NoHostAvailable {
        /// The script asked for.
        script: String,
        /// Each host and why it did not start the slave.
        refusals: Vec<crate::HostRefusal>,
    },

    /// A cluster was built without any host.
    #[error(
        "the cluster has no hosts: give it URLs, a DNS name that resolves, or a Slurm node list"
    )]
    NoHosts,

    /// A DNS name given to a cluster could not be resolved.
    #[error("the cluster's DNS name {name} could not be resolved: {source}")]
    ClusterDns {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A spawn option that the server, not the master, decides for remote slaves.
    #[error(
        "{option} cannot be set for a remote slave: the server decides how its slaves run \
         (environment, working directory) and passes arguments as text"
    )]
    RemoteOption {
        /// The option.
        option: &'static str,
    },

    /// A Slurm node list (`SLURM_JOB_NODELIST`) that cannot be expanded into host names.
    #[error(
        "the Slurm node list `{list}` cannot be read: {problem}; pass it as Slurm sets \
         SLURM_JOB_NODELIST, e.g. `node[01-04,07],gpu3`"
    )]
    SlurmNodelist {
        /// The list (its first 200 characters).
        list: String,
        /// What is wrong with it.
        problem: crate::NodelistProblem,
    },

    /// Sending a signal to a slave process failed.
    #[error("could not signal slave #{slave}: {source}")]
    Signal {
        /// The slave.
        slave: SlaveId,
        /// Why the operating system refused.
        #[source]
        source: std::io::Error,
    },
}

impl MasterError {
    /// Why the slave is stopped or gone, for the errors that come from that: a request the
    /// master failed ([`Task`](Self::Task)), an unreachable slave
    /// ([`Unavailable`](Self::Unavailable)) or one that ended before its handshake
    /// ([`NotReady`](Self::NotReady)).
    ///
    /// ```no_run
    /// use distio_master::EndReason;
    /// # async fn demo(slave: distio_master::Slave) {
    /// if let Err(err) = slave.exec("square", &3u64).catch_all(true).await {
    ///     if err.end_reason() == Some(&EndReason::Closed) {
    ///         println!("we closed it ourselves");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn end_reason(&self) -> Option<&EndReason> {
        match self {
            MasterError::Task { end, .. } | MasterError::NotReady { end, .. } => end.as_ref(),
            MasterError::Unavailable { end, .. } => Some(end),
            _ => None,
        }
    }
}

/// Why a slave never became ready, as the end of a sentence.
fn not_ready(end: &Option<EndReason>, limit: Duration) -> String {
    match end {
        Some(end) => format!("it {end}"),
        None => format!(
            "it did not finish its handshake within {limit:?}; it is left running, so close or \
             kill it if it should not stay"
        ),
    }
}
