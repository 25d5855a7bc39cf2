//! How a session's peer broke its rules, as a value.

use super::frames::Channel;

/// A rule of the remote session broken by the other side (or, for the `send` side
/// methods, a frame this side may not send now). The session cannot go on after one: the
/// side that sees it closes the connection.
///
/// ```
/// use distio_proto::remote::SessionViolation;
/// let v = SessionViolation::UnknownChannel { channel: 9, kind: "routed" };
/// assert!(v.to_string().contains("channel 9"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionViolation {
    /// The session did not start with its handshake frame.
    #[error("the session's first frame must be {expected}, but a {found} frame came")]
    HandshakeFirst {
        /// The frame that must come first.
        expected: &'static str,
        /// The frame that came.
        found: &'static str,
    },
    /// A handshake frame came a second time.
    #[error("a second {kind} frame came; the handshake happens once per session")]
    RepeatedHandshake {
        /// The frame.
        kind: &'static str,
    },
    /// A frame only the other side may send.
    #[error("a {kind} frame came from the {from}, which never sends it")]
    WrongDirection {
        /// The frame.
        kind: &'static str,
        /// Who sent it: "master" or "server".
        from: &'static str,
    },
    /// A spawn reused a channel number or went backwards.
    #[error(
        "a spawn asked for channel {channel}, but channels must increase and the last one \
         opened was {last}"
    )]
    ChannelNotIncreasing {
        /// The channel asked for.
        channel: Channel,
        /// The last channel opened in the session.
        last: Channel,
    },
    /// A frame named a channel the master never opened.
    #[error("a {kind} frame named channel {channel}, which was never opened")]
    UnknownChannel {
        /// The channel named.
        channel: Channel,
        /// The frame.
        kind: &'static str,
    },
    /// A frame named a channel that is not at the stage the frame needs.
    #[error("a {kind} frame named channel {channel}, whose slave is {stage}")]
    WrongStage {
        /// The channel named.
        channel: Channel,
        /// The frame.
        kind: &'static str,
        /// Where the channel's slave is: "starting", "running" or "ended".
        stage: &'static str,
    },
    /// A frame came after the session was closed.
    #[error("a {kind} frame came after the session was closed")]
    AfterClose {
        /// The frame.
        kind: &'static str,
    },
    /// The master ran out of channel numbers (after 4 billion spawns on one session).
    #[error("this session has used every channel number; open a new session")]
    ChannelsExhausted,
}
