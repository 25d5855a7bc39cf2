//! Why a slave stopped taking requests or ended, as typed values: what callers match on,
//! and what the master turns into the wire-level error of the requests it fails.

use distio_proto::{ErrorKind, ProtoError, SlaveId};
use std::fmt;
use std::process::ExitStatus;
use std::sync::Arc;

use crate::Signal;

/// Why a slave takes no more requests: the master stopped it, or it ended on its own.
///
/// Carried by a [`Response`](crate::Response) the master failed itself
/// ([`Response::end_reason`](crate::Response::end_reason)), by
/// [`MasterError::Task`](crate::MasterError::Task),
/// [`MasterError::Unavailable`](crate::MasterError::Unavailable) and
/// [`MasterError::NotReady`](crate::MasterError::NotReady), and by the slave itself
/// ([`Slave::end_reason`](crate::Slave::end_reason)). On the wire these requests fail with
/// [`ErrorKind::Closed`] or [`ErrorKind::SlaveExited`]; this tells the cases apart.
///
/// `Display` gives a predicate, to follow the slave's name: "Slave #3 was closed".
///
/// ```
/// use distio_master::{EndReason, Signal};
///
/// fn retry_elsewhere(reason: &EndReason) -> bool {
///     match reason {
///         // We asked for it: do not retry.
///         EndReason::Closed | EndReason::ShutDown | EndReason::Killed(_) => false,
///         // It died or misbehaved: another slave may do better.
///         _ => true,
///     }
/// }
/// assert!(!retry_elsewhere(&EndReason::Killed(Signal::TERM)));
/// assert_eq!(EndReason::Killed(Signal::TERM).to_string(), "was killed with SIGTERM");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The master closed it ([`Slave::close`](crate::Slave::close)): requests still pending
    /// failed, and later ones are refused.
    Closed,
    /// The master shut it down ([`Slave::shutdown`](crate::Slave::shutdown)): pending
    /// requests were let finish, later ones are refused.
    ShutDown,
    /// The master sent it this signal ([`Slave::kill`](crate::Slave::kill); for a slave that
    /// is not a local process, its link was dropped instead). The first signal counts when
    /// several were sent; [`Slave::exit_status`](crate::Slave::exit_status) tells how the
    /// process exited.
    Killed(Signal),
    /// Its process exited without the master asking: it returned, crashed, or was killed
    /// from outside the master.
    Exited(ExitStatus),
    /// It broke the protocol, so the master closed its link (and killed its process).
    ProtocolViolation(ProtocolViolation),
    /// Its connection closed (or failed) without the master asking, and no process exit
    /// explains it: a slave that is not a local process, or a process that kept running.
    Disconnected,
    /// It ran on a host ([`SpawnOptions::remote`](crate::SpawnOptions::remote)) whose
    /// server ended it for living longer than the server's lifetime limit
    /// (`kill_slaves_after`).
    LifetimeLimit {
        /// The host, as `ws://[user@]host:port`.
        host: String,
    },
    /// It ran on a host that was lost: the connection dropped, the server stopped answering
    /// heartbeats, or the server stopped. Every request pending on it failed at once.
    HostLost(crate::HostLoss),
}

impl EndReason {
    /// True if the master ended the slave on request (close, shutdown or kill), false if it
    /// ended on its own or misbehaved.
    ///
    /// ```
    /// use distio_master::EndReason;
    /// assert!(EndReason::ShutDown.was_requested());
    /// assert!(!EndReason::Disconnected.was_requested());
    /// ```
    pub fn was_requested(&self) -> bool {
        matches!(
            self,
            EndReason::Closed | EndReason::ShutDown | EndReason::Killed(_)
        )
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Closed => f.write_str("was closed"),
            EndReason::ShutDown => f.write_str("was shut down"),
            EndReason::Killed(signal) => write!(f, "was killed with {signal}"),
            EndReason::Exited(exit) => write!(f, "exited ({})", describe_exit(*exit)),
            EndReason::ProtocolViolation(violation) => {
                write!(
                    f,
                    "broke the protocol ({violation}); its connection was closed"
                )
            }
            EndReason::Disconnected => f.write_str("closed its connection"),
            EndReason::LifetimeLimit { host } => write!(
                f,
                "was ended by {host} for outliving the server's lifetime limit (kill_slaves_after)"
            ),
            EndReason::HostLost(loss) => write!(f, "was lost with its {loss}"),
        }
    }
}

/// How a slave broke the protocol; see [`EndReason::ProtocolViolation`].
///
/// ```
/// use distio_master::ProtocolViolation;
/// let v = ProtocolViolation::UnexpectedFrame { kind: "hello" };
/// assert_eq!(v.to_string(), "it sent a hello frame, which slaves never send");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// Its first frame was not `ready`.
    NoReady {
        /// The kind of frame it sent instead.
        sent: &'static str,
    },
    /// Its `ready` frame failed the protocol check (magic bytes or version).
    BadHandshake(Arc<ProtoError>),
    /// Its `ready` frame named another slave than the one the master started.
    WrongIdentity {
        /// The id it answered with.
        id: SlaveId,
        /// The alias it answered with.
        alias: String,
    },
    /// It sent a kind of frame slaves never send.
    UnexpectedFrame {
        /// The frame's kind.
        kind: &'static str,
    },
    /// It sent bytes that do not decode as a frame (or a frame over the size limit).
    InvalidFrame(Arc<ProtoError>),
}

impl PartialEq for ProtocolViolation {
    /// Equal when of the same kind with the same details; decoding errors compare by
    /// their text.
    fn eq(&self, other: &Self) -> bool {
        use ProtocolViolation::*;
        match (self, other) {
            (NoReady { sent: a }, NoReady { sent: b }) => a == b,
            (BadHandshake(a), BadHandshake(b)) | (InvalidFrame(a), InvalidFrame(b)) => {
                Arc::ptr_eq(a, b) || a.to_string() == b.to_string()
            }
            (WrongIdentity { id: a, alias: x }, WrongIdentity { id: b, alias: y }) => {
                a == b && x == y
            }
            (UnexpectedFrame { kind: a }, UnexpectedFrame { kind: b }) => a == b,
            _ => false,
        }
    }
}

impl Eq for ProtocolViolation {}

impl fmt::Display for ProtocolViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolViolation::NoReady { sent } => {
                write!(f, "its first frame was {sent}, not ready")
            }
            ProtocolViolation::BadHandshake(err) => {
                write!(f, "its handshake was refused: {err}")
            }
            ProtocolViolation::WrongIdentity { id, alias } => write!(
                f,
                "its handshake was refused: it answered as slave #{id} (\"{alias}\")"
            ),
            ProtocolViolation::UnexpectedFrame { kind } => {
                write!(f, "it sent a {kind} frame, which slaves never send")
            }
            ProtocolViolation::InvalidFrame(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ProtocolViolation {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtocolViolation::BadHandshake(err) | ProtocolViolation::InvalidFrame(err) => {
                Some(&**err)
            }
            _ => None,
        }
    }
}

/// How a slave's link ended, as recorded when it did: the reason, and what the message and
/// wire-level kind of the requests it fails are made from.
#[derive(Clone, Debug)]
pub(crate) struct Ended {
    pub(crate) reason: EndReason,
    /// How the process exited, if it had by then.
    pub(crate) exit: Option<ExitStatus>,
    /// True for a local process (which may have kept running).
    pub(crate) has_process: bool,
}

impl Ended {
    /// The wire-level kind of the requests this end fails: `SlaveExited` when a process
    /// exit ended the link, `Closed` otherwise.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self.reason {
            EndReason::Exited(_) | EndReason::LifetimeLimit { .. } | EndReason::HostLost(_) => {
                ErrorKind::SlaveExited
            }
            EndReason::ShutDown | EndReason::Killed(_) if self.exit.is_some() => {
                ErrorKind::SlaveExited
            }
            _ => ErrorKind::Closed,
        }
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lingered = "closed its connection and did not exit";
        match (&self.reason, self.exit) {
            (EndReason::ShutDown | EndReason::Killed(_), Some(exit)) => {
                write!(f, "{} and exited ({})", self.reason, describe_exit(exit))
            }
            (EndReason::ShutDown | EndReason::Killed(_), None) if self.has_process => {
                write!(f, "{}; it {lingered}", self.reason)
            }
            (EndReason::Disconnected, _) if self.has_process => f.write_str(lingered),
            (reason, _) => fmt::Display::fmt(reason, f),
        }
    }
}

/// "code 3" or "signal 9 (SIGKILL)".
pub(crate) fn describe_exit(exit: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("code {code}"),
        (None, Some(sig)) => format!(
            "signal {sig}{}",
            Signal(sig)
                .name()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        (None, None) => exit.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn ended(reason: EndReason, exit: Option<i32>, has_process: bool) -> Ended {
        Ended {
            reason,
            exit: exit.map(ExitStatus::from_raw),
            has_process,
        }
    }

    #[test]
    fn the_wire_kind_is_slave_exited_only_when_an_exit_ended_the_link() {
        let sigkill = Some(9);
        assert_eq!(
            ended(EndReason::Exited(ExitStatus::from_raw(9)), sigkill, true).kind(),
            ErrorKind::SlaveExited
        );
        assert_eq!(
            ended(EndReason::Killed(Signal::KILL), sigkill, true).kind(),
            ErrorKind::SlaveExited
        );
        assert_eq!(
            ended(EndReason::Killed(Signal::KILL), None, false).kind(),
            ErrorKind::Closed
        );
        assert_eq!(
            ended(EndReason::Closed, Some(0), true).kind(),
            ErrorKind::Closed
        );
        let violation = EndReason::ProtocolViolation(ProtocolViolation::NoReady { sent: "event" });
        assert_eq!(ended(violation, sigkill, true).kind(), ErrorKind::Closed);
    }

    #[test]
    fn messages_read_as_sentences_about_the_slave() {
        let exited = ExitStatus::from_raw(3 << 8);
        assert_eq!(
            ended(EndReason::Exited(exited), Some(3 << 8), true).to_string(),
            "exited (code 3)"
        );
        assert_eq!(
            ended(EndReason::Killed(Signal::KILL), Some(9), true).to_string(),
            "was killed with SIGKILL and exited (signal 9 (SIGKILL))"
        );
        assert_eq!(
            ended(EndReason::Disconnected, None, true).to_string(),
            "closed its connection and did not exit"
        );
        assert_eq!(
            ended(EndReason::Disconnected, None, false).to_string(),
            "closed its connection"
        );
        assert_eq!(
            ended(EndReason::Closed, Some(0), true).to_string(),
            "was closed"
        );
    }
}
