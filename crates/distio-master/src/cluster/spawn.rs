//! Starting one slave somewhere in a cluster: which errors send it to the next host.

use distio_proto::remote::SpawnFailure;
use std::fmt;

use crate::MasterError;

/// A host that did not start a slave of a cluster, and why (in
/// [`MasterError::NoHostAvailable`]).
///
/// ```
/// let refusal = distio_master::HostRefusal { host: "ws://node1:1337".into(), reason: "down".into() };
/// assert_eq!(refusal.to_string(), "ws://node1:1337: down");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRefusal {
    /// The host (never with a password).
    pub host: String,
    /// Why, as a sentence: the error it gave, or why it is down.
    pub reason: String,
}

impl HostRefusal {
    pub(crate) fn list(refusals: &[HostRefusal]) -> String {
        if refusals.is_empty() {
            return "it has no host that is up".into();
        }
        refusals
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for HostRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.host, self.reason)
    }
}

/// What a failed spawn on one host means for the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The host is fine but did not take this slave (full, queue timed out, a script it
    /// lacks): try the next host.
    TryElsewhere,
    /// The host is gone, unreachable, stopping or refuses this master: mark it down,
    /// probe it later, try the next host.
    HostDown,
    /// The request itself is wrong (an option no host accepts): no host would take it.
    Fatal,
}

/// Judges a spawn error from one host.
pub(crate) fn judge(err: &MasterError) -> Verdict {
    match err {
        MasterError::RemoteSpawn { kind, .. } => match kind {
            SpawnFailure::ServerStopping => Verdict::HostDown,
            _ => Verdict::TryElsewhere,
        },
        MasterError::RemoteSpawnTimedOut { .. } => Verdict::TryElsewhere,
        MasterError::HostLost { .. }
        | MasterError::HostUnreachable { .. }
        | MasterError::HostNotListening { .. }
        | MasterError::HostHandshake { .. }
        | MasterError::HostUnauthorized { .. }
        | MasterError::HostForbidden { .. }
        | MasterError::HostNotAuthenticated { .. }
        | MasterError::HostNeedsPassphrase { .. }
        | MasterError::HostRefusedPassphrase { .. }
        | MasterError::HostHasNoPassphrase { .. }
        | MasterError::TlsHandshake { .. }
        | MasterError::TlsUnknownCa { .. }
        | MasterError::TlsNameMismatch { .. }
        | MasterError::TlsClientCertRefused { .. } => Verdict::HostDown,
        _ => Verdict::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_host_sends_the_slave_elsewhere_and_a_gone_one_is_marked_down() {
        let full = MasterError::RemoteSpawn {
            host: "h".into(),
            script: "s".into(),
            kind: SpawnFailure::QueueFull,
            message: "full".into(),
        };
        assert_eq!(judge(&full), Verdict::TryElsewhere);
        let gone = MasterError::HostUnreachable {
            host: "h".into(),
            reason: "refused".into(),
        };
        assert_eq!(judge(&gone), Verdict::HostDown);
        let wrong = MasterError::RemoteOption { option: "env" };
        assert_eq!(judge(&wrong), Verdict::Fatal);
    }

    #[test]
    fn the_refusals_read_as_one_sentence() {
        let refusals = [
            HostRefusal {
                host: "a".into(),
                reason: "down".into(),
            },
            HostRefusal {
                host: "b".into(),
                reason: "full".into(),
            },
        ];
        assert_eq!(HostRefusal::list(&refusals), "a: down; b: full");
        assert_eq!(HostRefusal::list(&[]), "it has no host that is up");
    }
}
