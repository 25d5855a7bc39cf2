//! The frames of a remote session, apart from routed slave frames (see
//! [`SessionFrame`](super::SessionFrame)).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::SlaveId;

/// Identifies one slave within one remote session. The master picks them, each greater
/// than the last it picked in the session, never 0.
pub type Channel = u32;

/// Master → server, the session's first frame: protocol check and who is asking.
///
/// ```
/// use distio_proto::remote::Open;
/// let open = Open::new("build-runner");
/// assert!(open.check().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    /// Always [`MAGIC`](crate::MAGIC).
    pub magic: [u8; 4],
    /// The master's [`SESSION_VERSION`](super::SESSION_VERSION).
    pub version: u16,
    /// Free text naming the master, for the server's logs.
    pub client: String,
}

impl Open {
    /// An open frame for this crate's protocol version.
    pub fn new(client: impl Into<String>) -> Self {
        Open {
            magic: crate::MAGIC,
            version: super::SESSION_VERSION,
            client: client.into(),
        }
    }

    /// Checks the magic and version.
    pub fn check(&self) -> Result<(), crate::ProtoError> {
        super::check_session_handshake(self.magic, self.version)
    }
}

/// Server → master, the answer to [`Open`]: protocol check, which server this is and how
/// much room it has.
///
/// ```
/// use distio_proto::remote::Welcome;
/// let welcome = Welcome::new("host-a", 7, 32);
/// assert!(welcome.check().is_ok());
/// assert_eq!(welcome.capacity, 32);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Always [`MAGIC`](crate::MAGIC).
    pub magic: [u8; 4],
    /// The server's [`SESSION_VERSION`](super::SESSION_VERSION).
    pub version: u16,
    /// The server's name (its host name unless configured otherwise).
    pub server: String,
    /// A random number the server picks when it starts: two sessions that see the same
    /// one reached the same running server.
    pub instance: u64,
    /// How many slaves the server runs at once, across all sessions.
    pub capacity: u32,
    /// How many slaves it was running when the session opened.
    pub running: u32,
    /// How many spawns were waiting for a place.
    pub queued: u32,
    /// The number of CPUs the server's machine offers it.
    pub cpus: u32,
}

impl Welcome {
    /// A welcome for this crate's protocol version, with the counts at zero.
    pub fn new(server: impl Into<String>, instance: u64, capacity: u32) -> Self {
        Welcome {
            magic: crate::MAGIC,
            version: super::SESSION_VERSION,
            server: server.into(),
            instance,
            capacity,
            running: 0,
            queued: 0,
            cpus: 1,
        }
    }

    /// Checks the magic and version.
    pub fn check(&self) -> Result<(), crate::ProtoError> {
        super::check_session_handshake(self.magic, self.version)
    }
}

/// Server → master, after the welcome and then once per heartbeat interval: how busy the
/// server is now, so a master spreading slaves over many hosts places them by fresh figures.
///
/// ```
/// use distio_proto::remote::Status;
/// let status = Status { capacity: 8, running: 2, queued: 0, cpus: 4, load_milli: 1_500 };
/// assert_eq!(status.load(), 1.5);
/// assert_eq!(status.free(), 6);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// How many slaves the server runs at once (all sessions together).
    pub capacity: u32,
    /// How many run now (all sessions together).
    pub running: u32,
    /// How many spawns wait for a free place.
    pub queued: u32,
    /// The server machine's CPU count.
    pub cpus: u32,
    /// The machine's one-minute load average, in thousandths.
    pub load_milli: u32,
}

impl Status {
    /// The one-minute load average.
    pub fn load(&self) -> f32 {
        self.load_milli as f32 / 1000.0
    }

    /// Places free now: capacity less running (0 when full).
    pub fn free(&self) -> u32 {
        self.capacity.saturating_sub(self.running)
    }
}

impl From<&Welcome> for Status {
    fn from(welcome: &Welcome) -> Self {
        Status {
            capacity: welcome.capacity,
            running: welcome.running,
            queued: welcome.queued,
            cpus: welcome.cpus,
            load_milli: 0,
        }
    }
}

/// Master → server: start a slave on channel `channel`.
///
/// The server decides how the script runs (interpreter, environment, working
/// directory); the master only names it, relative to the server's root.
///
/// ```
/// use distio_proto::remote::Spawn;
/// let spawn = Spawn::new(1, 1, "workers/square.py");
/// assert_eq!(spawn.script, "workers/square.py");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spawn {
    /// The channel the slave's frames will travel on.
    pub channel: Channel,
    /// The master's id for the slave (the slave's `remote_id`).
    pub slave: SlaveId,
    /// The script's path relative to the server's root.
    pub script: String,
    /// Command-line arguments for the script.
    pub args: Vec<String>,
    /// The slave's alias, for the server's logs and operator view.
    pub alias: String,
    /// The slave's group, for the same.
    pub group: Option<String>,
}

impl Spawn {
    /// A spawn of `script` without arguments, alias or group.
    pub fn new(channel: Channel, slave: SlaveId, script: impl Into<String>) -> Self {
        Spawn {
            channel,
            slave,
            script: script.into(),
            args: Vec::new(),
            alias: String::new(),
            group: None,
        }
    }
}

/// Server → master: the slave of `channel` started. Its frames may flow from now on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spawned {
    /// The channel of the [`Spawn`].
    pub channel: Channel,
    /// The slave's process id on the server's machine.
    pub pid: u32,
    /// The server's id for the slave (the slave's `server_id`).
    pub server_id: SlaveId,
}

/// Server → master: the slave of `channel` did not start; the channel is finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnFailed {
    /// The channel of the [`Spawn`].
    pub channel: Channel,
    /// Why, as a value.
    pub kind: SpawnFailure,
    /// Why, as a sentence for a person.
    pub message: String,
}

/// Why a server did not start a slave. The order is the wire index, and new kinds are
/// appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SpawnFailure {
    /// Index 0: no file at the script path.
    NoSuchScript,
    /// Index 1: the file is neither executable nor of a type the server has an interpreter for.
    NotExecutable,
    /// Index 2: the path is absolute, contains `..`, or leads outside the root.
    OutsideRoot,
    /// Index 3: the spawn frame was malformed (an empty script, say).
    Invalid,
    /// Index 4: the server's spawn queue is full.
    QueueFull,
    /// Index 5: the spawn waited in the queue longer than the server allows.
    QueueTimeout,
    /// Index 6: the master killed the slave while its spawn was still queued.
    Cancelled,
    /// Index 7: the server is stopping.
    ServerStopping,
    /// Index 8: starting the process failed on the server.
    StartFailed,
}

/// Server → master: a piece of a slave's standard output or error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The slave's channel.
    pub channel: Channel,
    /// Which stream.
    pub stream: OutputStream,
    /// How many lines of this stream the server dropped just before this one, because the
    /// link did not drain them fast enough.
    pub lost: u64,
    /// The bytes: one line, its newline included when it had one.
    #[serde(with = "super::message::bytes_serde")]
    pub data: Bytes,
}

/// A slave's output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputStream {
    /// Index 0: standard output.
    Stdout,
    /// Index 1: standard error.
    Stderr,
}

/// Master → server: send `signal` to the slave of `channel` (a queued spawn is cancelled
/// instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kill {
    /// The slave's channel.
    pub channel: Channel,
    /// The signal number (Linux numbering).
    pub signal: i32,
}

/// Server → master: the slave of `channel` has exited; nothing more comes on the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    /// The slave's channel.
    pub channel: Channel,
    /// Its exit code, if it exited by itself.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Why it ended.
    pub cause: ExitCause,
}

/// Why a remote slave ended. The order is the wire index, and new kinds are appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExitCause {
    /// Index 0: it exited (or died) by itself.
    Exited,
    /// Index 1: the master's [`Kill`] ended it.
    Killed,
    /// Index 2: it ran longer than the server's lifetime limit.
    LifetimeLimit,
    /// Index 3: its session ended.
    SessionEnded,
    /// Index 4: the server is stopping.
    ServerStopping,
}

/// Either way: the sender is ending the session, and why. The last frame it sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closing {
    /// Why, as a value.
    pub reason: CloseReason,
    /// Why, as a sentence for a person.
    pub message: String,
}

/// Why a session ends. The order is the wire index, and new kinds are appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CloseReason {
    /// Index 0: the sender is done with the session.
    Done,
    /// Index 1: the server is stopping.
    ServerStopping,
    /// Index 2: the other side broke the protocol.
    ProtocolViolation,
    /// Index 3: the other side stopped answering heartbeats.
    HeartbeatLost,
    /// Index 4: the server requires the passphrase handshake, and the master opened
    /// without it.
    PassphraseRequired,
    /// Index 5: the master's passphrase proof was wrong.
    PassphraseRefused,
    /// Index 6: the master began the passphrase handshake, but the server has no
    /// passphrase.
    PassphraseUnexpected,
    /// Index 7: the server refused a [`Resume`](super::Resume): its token is unknown or
    /// expired (the session ended), it belongs to another user, or the server is another
    /// instance (it restarted). The message says which.
    ResumeRefused,
}
