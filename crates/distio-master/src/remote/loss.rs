//! Why a remote slave was lost with its host, as a value.

use std::fmt;

/// How a master lost a remote slave's host; see [`EndReason::HostLost`](crate::EndReason::HostLost).
///
/// ```
/// use distio_master::{HostLoss, LossCause};
/// let loss = HostLoss { host: "ws://build-7:1337".into(), cause: LossCause::HeartbeatLost };
/// assert!(loss.to_string().contains("ws://build-7:1337"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLoss {
    /// The host, as `ws://[user@]host:port` (never with the password).
    pub host: String,
    /// What happened to the session with it.
    pub cause: LossCause,
}

/// What ended a session with a host.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossCause {
    /// The connection closed or failed.
    ConnectionLost,
    /// The server stopped answering heartbeats.
    HeartbeatLost,
    /// The server is stopping and ended every slave.
    ServerStopping,
    /// The server ended the session (a close it sent, with its sentence).
    ClosedByServer(String),
    /// One side broke the session protocol.
    ProtocolViolation(String),
    /// The link dropped, and the server refused to resume the session over a new one (it
    /// restarted, or the session had ended), with its sentence.
    ResumeRefused(String),
    /// The link dropped and could not be resumed within the host's resume window.
    ResumeWindowPassed(std::time::Duration),
    /// The server acknowledged too slowly: keeping more frames to replay would pass the
    /// limit.
    ReplayOverflow,
    /// The link dropped and nothing listens on the host's port any more: its server
    /// stopped or was killed, and the session with it.
    ServerGone,
}

impl fmt::Display for LossCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossCause::ConnectionLost => f.write_str("the connection to it was lost"),
            LossCause::HeartbeatLost => {
                f.write_str("it stopped answering heartbeats (the machine or network may be down)")
            }
            LossCause::ServerStopping => f.write_str("its server is stopping"),
            LossCause::ClosedByServer(why) => write!(f, "its server ended the session: {why}"),
            LossCause::ProtocolViolation(why) => {
                write!(f, "the session broke the protocol ({why})")
            }
            LossCause::ResumeRefused(why) => {
                write!(
                    f,
                    "the link dropped and it refused to resume the session: {why}"
                )
            }
            LossCause::ResumeWindowPassed(window) => write!(
                f,
                "the link dropped and could not be resumed within {window:?} (the host or \
                 the network may be down)"
            ),
            LossCause::ServerGone => f.write_str(
                "the link dropped and nothing listens on its port any more (its server was \
                 stopped or killed)",
            ),
            LossCause::ReplayOverflow => f.write_str(
                "it acknowledged the session's frames too slowly (more than the replay limit \
                 was waiting)",
            ),
        }
    }
}

impl fmt::Display for HostLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host {}: {}", self.host, self.cause)
    }
}
