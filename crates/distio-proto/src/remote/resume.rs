//! The frames that resume a session over a new connection after its link dropped.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The length of a resume token.
pub const TOKEN_LEN: usize = 32;

/// Server → master, right after the welcome: the token that resumes this session over a
/// new connection, and how long the server keeps the session after its link drops.
///
/// A server that does not resume sessions sends none. `Debug` never shows the token.
///
/// ```
/// use distio_proto::remote::ResumeToken;
/// let token = ResumeToken { token: [7; 32], grace_ms: 30_000 };
/// assert!(!format!("{token:?}").contains('7'));
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeToken {
    /// Random bytes, secret to the session.
    pub token: [u8; TOKEN_LEN],
    /// How long, in milliseconds, the server keeps the session's slaves after its link
    /// drops, waiting for a resume.
    pub grace_ms: u32,
}

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeToken")
            .field("token", &"<redacted>")
            .field("grace_ms", &self.grace_ms)
            .finish()
    }
}

/// Master → server, the first session frame of a new connection instead of
/// [`Open`](super::Open): carry on the session of `token`, on the server instance
/// `instance`; the master has received `received` counted frames of it.
///
/// ```
/// use distio_proto::remote::Resume;
/// let resume = Resume::new([1; 32], 9, 40);
/// assert!(resume.check().is_ok());
/// assert!(!format!("{resume:?}").contains("[1,"));
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// Always [`MAGIC`](crate::MAGIC).
    pub magic: [u8; 4],
    /// The master's [`SESSION_VERSION`](super::SESSION_VERSION).
    pub version: u16,
    /// The session's [`ResumeToken::token`].
    pub token: [u8; TOKEN_LEN],
    /// The [`Welcome::instance`](super::Welcome::instance) of the session's server.
    pub instance: u64,
    /// How many counted frames of the server's the master has received.
    pub received: u64,
}

impl Resume {
    /// A resume for this crate's protocol version.
    pub fn new(token: [u8; TOKEN_LEN], instance: u64, received: u64) -> Self {
        Resume {
            magic: crate::MAGIC,
            version: super::SESSION_VERSION,
            token,
            instance,
            received,
        }
    }

    /// Checks the magic and version.
    pub fn check(&self) -> Result<(), crate::ProtoError> {
        super::check_session_handshake(self.magic, self.version)
    }
}

impl fmt::Debug for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resume")
            .field("magic", &self.magic)
            .field("version", &self.version)
            .field("token", &"<redacted>")
            .field("instance", &self.instance)
            .field("received", &self.received)
            .finish()
    }
}

/// Server → master, the answer to an accepted [`Resume`]: the server (instance
/// `instance`) has received `received` counted frames of the master's. Both sides then
/// send again what the other has not received, in order, and carry on.
///
/// The master checks `instance` is the session's: a server that restarted cannot carry
/// the session on, whatever it answers.
///
/// ```
/// use distio_proto::remote::Resumed;
/// let resumed = Resumed { instance: 9, received: 40 };
/// assert_eq!(resumed.instance, 9);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    /// The server's [`Welcome::instance`](super::Welcome::instance): the same as the
    /// session's welcome said.
    pub instance: u64,
    /// How many counted frames of the master's the server has received.
    pub received: u64,
}

/// Either way: the sender has received `received` counted frames of the other side's
/// (cumulative). Not itself counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// How many counted frames the sender has received so far.
    pub received: u64,
}
