//! Everything that crosses a master–slave connection.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::{Payload, ProtoError};

/// Identifies a request on one connection. The master picks them; they are never reused on a
/// connection.
pub type RequestId = u64;

/// Identifies a slave within one master. Never reused by that master.
pub type SlaveId = u64;

/// The four bytes every handshake frame starts with: `b"DSIO"`.
pub const MAGIC: [u8; 4] = *b"DSIO";

/// The protocol version this crate speaks. Bumped on any change to the encoding of an
/// existing frame; adding a frame kind at the end does not bump it.
pub const PROTOCOL_VERSION: u16 = 1;

/// One message on a master–slave connection.
///
/// The variant order is the wire tag (`u32`, little endian) and is frozen. The remote-host
/// frames are not here: they are [`SessionFrame`](crate::remote::SessionFrame)s, tags 6 to
/// 15, which share this tag space so that a session message is never taken for a slave
/// frame, nor a slave frame for a session message.
///
/// ```
/// use distio_proto::{Frame, Control};
/// let frame = Frame::Control(Control::Ping(7));
/// assert_eq!(frame.kind(), "control");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Frame {
    /// Tag 0, master → slave, first frame: protocol check and the slave's identity.
    Hello(Hello),
    /// Tag 1, slave → master, first frame: protocol check, who the slave is, what it serves.
    Ready(Ready),
    /// Tag 2, master → slave: run a task.
    Request(Request),
    /// Tag 3, slave → master: the outcome of a request.
    Response(Response),
    /// Tag 4, either way: connection control.
    Control(Control),
    /// Tag 5, slave → master: a named event the slave emitted.
    Event(Event),
}

impl Frame {
    /// Number of frame kinds this version knows (tags `0..KINDS`).
    pub const KINDS: u32 = 6;

    /// A short lowercase name for the frame's kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
            Frame::Ready(_) => "ready",
            Frame::Request(_) => "request",
            Frame::Response(_) => "response",
            Frame::Control(_) => "control",
            Frame::Event(_) => "event",
        }
    }
}

/// Checks a peer's magic bytes and protocol version.
///
/// ```
/// use distio_proto::{check_handshake, MAGIC, PROTOCOL_VERSION, ProtoError};
/// assert!(check_handshake(MAGIC, PROTOCOL_VERSION).is_ok());
/// assert!(matches!(check_handshake(*b"HTTP", 1), Err(ProtoError::BadMagic { .. })));
/// assert!(matches!(check_handshake(MAGIC, 99), Err(ProtoError::UnsupportedVersion { .. })));
/// ```
pub fn check_handshake(magic: [u8; 4], version: u16) -> Result<(), ProtoError> {
    check_magic_and_version(magic, version, PROTOCOL_VERSION)
}

/// Checks `magic` and that `version` is `supported`.
pub(crate) fn check_magic_and_version(
    magic: [u8; 4],
    version: u16,
    supported: u16,
) -> Result<(), ProtoError> {
    if magic != MAGIC {
        return Err(ProtoError::BadMagic {
            found: magic,
            expected: MAGIC,
        });
    }
    if version != supported {
        return Err(ProtoError::UnsupportedVersion {
            found: version,
            supported,
        });
    }
    Ok(())
}

/// The master's half of the handshake: sent first, tells the slave who it is.
///
/// ```
/// use distio_proto::{Hello, SlaveIdentity};
/// let hello = Hello::new(SlaveIdentity::local(3, "worker"));
/// assert!(hello.check().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The master's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The identity the master assigned to this slave.
    pub identity: SlaveIdentity,
}

impl Hello {
    /// A hello for this crate's protocol version.
    pub fn new(identity: SlaveIdentity) -> Self {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            identity,
        }
    }

    /// Checks the magic and version.
    pub fn check(&self) -> Result<(), ProtoError> {
        check_handshake(self.magic, self.version)
    }
}

/// Who a slave is, as the master that owns it sees it.
///
/// ```
/// use distio_proto::SlaveIdentity;
/// let id = SlaveIdentity::local(0, "a");
/// assert!(!id.was_proxied());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaveIdentity {
    /// The id the connected master assigned.
    pub id: SlaveId,
    /// The alias the connected master assigned (unique among its live slaves).
    pub alias: String,
    /// For a slave a server spawned for a remote master: the server's id for it.
    pub server_id: Option<SlaveId>,
    /// For a slave a server spawned for a remote master: the remote master's id for it.
    pub remote_id: Option<SlaveId>,
}

impl SlaveIdentity {
    /// The identity of a slave its master spawned on the same machine.
    pub fn local(id: SlaveId, alias: impl Into<String>) -> Self {
        SlaveIdentity {
            id,
            alias: alias.into(),
            server_id: None,
            remote_id: None,
        }
    }

    /// True when a server spawned this slave on behalf of a remote master.
    pub fn was_proxied(&self) -> bool {
        self.remote_id.is_some()
    }
}

/// The slave's half of the handshake: sent once it has read [`Hello`] and is serving.
///
/// ```
/// use distio_proto::Ready;
/// let ready = Ready::new(1234, 3, "worker", vec!["square".into()]);
/// assert!(ready.check().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The slave's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The slave's operating-system process id.
    pub pid: u32,
    /// The id from [`Hello`], echoed.
    pub id: SlaveId,
    /// The alias from [`Hello`], echoed.
    pub alias: String,
    /// The names of the tasks the slave serves.
    pub tasks: Vec<String>,
}

impl Ready {
    /// A ready frame for this crate's protocol version.
    pub fn new(pid: u32, id: SlaveId, alias: impl Into<String>, tasks: Vec<String>) -> Self {
        Ready {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            pid,
            id,
            alias: alias.into(),
            tasks,
        }
    }

    /// Checks the magic and version.
    pub fn check(&self) -> Result<(), ProtoError> {
        check_handshake(self.magic, self.version)
    }
}

/// Run task `task` with `payload`.
///
/// ```
/// use distio_proto::{Metadata, Payload, Request};
/// let req = Request { id: 1, task: "square".into(), payload: Payload::encode(&4u64)?, meta: Metadata::default() };
/// assert_eq!(req.payload.decode::<u64>()?, 4);
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the master; the response carries it back.
    pub id: RequestId,
    /// Name of the task to run.
    pub task: String,
    /// The task's input.
    pub payload: Payload,
    /// Options for this request.
    pub meta: Metadata,
}

/// Per-request options. The master sends the values in force after applying its defaults,
/// so the slave sees exactly what the master enforces.
///
/// ```
/// use distio_proto::{Metadata, Payload};
/// use std::time::Duration;
/// let meta = Metadata::new()
///     .with_timeout(Duration::from_secs(5))
///     .with_catch_all(true)
///     .with_extra("trace", Payload::encode("abc")?);
/// assert_eq!(meta.timeout, Some(Duration::from_secs(5)));
/// assert_eq!(meta.extra["trace"].decode::<String>()?, "abc");
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// How long the master waits for the response. `None`: not set here (a default applies);
    /// `Some(Duration::ZERO)`: explicitly no timeout.
    pub timeout: Option<Duration>,
    /// Whether an error response is returned to the caller as an error. `None`: not set here.
    pub catch_all: Option<bool>,
    /// Further named values: room for options later versions add, and for the caller's own.
    pub extra: BTreeMap<String, Payload>,
}

impl Metadata {
    /// Metadata with nothing set.
    pub fn new() -> Self {
        Metadata::default()
    }

    /// Sets the timeout (`Duration::ZERO` means explicitly none).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the catch-all flag.
    #[must_use]
    pub fn with_catch_all(mut self, catch_all: bool) -> Self {
        self.catch_all = Some(catch_all);
        self
    }

    /// Adds a named value.
    #[must_use]
    pub fn with_extra(mut self, key: impl Into<String>, value: Payload) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
}

/// The outcome of a request.
///
/// ```
/// use distio_proto::{ErrorKind, Response, TaskError};
/// let resp = Response { request: 1, slave: 0, outcome: Err(TaskError::new(ErrorKind::Paused, "paused")) };
/// assert!(resp.outcome.is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The [`Request::id`] this answers.
    pub request: RequestId,
    /// The id of the slave that answered.
    pub slave: SlaveId,
    /// The task's value, or why there is none.
    pub outcome: Result<Payload, TaskError>,
}

/// Why a request produced no value.
///
/// ```
/// use distio_proto::{ErrorKind, TaskError};
/// let err = TaskError::new(ErrorKind::UnknownTask, "Slave #0 does not listen to task \"x\"");
/// assert_eq!(err.to_string(), "Slave #0 does not listen to task \"x\"");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A sentence for people.
    pub message: String,
}

impl TaskError {
    /// A task error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        TaskError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

/// The kinds of [`TaskError`]. The order is the wire tag and is frozen.
///
/// ```
/// use distio_proto::ErrorKind;
/// assert_eq!(ErrorKind::TimedOut.to_string(), "timed out");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Tag 0: the slave has no task of that name.
    UnknownTask,
    /// Tag 1: the task's handler returned an error (or its input did not decode).
    HandlerFailed,
    /// Tag 2: the task's handler panicked; the slave goes on serving.
    HandlerPanicked,
    /// Tag 3: the slave is paused and not accepting requests.
    Paused,
    /// Tag 4: no response arrived within the request's timeout.
    TimedOut,
    /// Tag 5: the slave process exited while the request was pending.
    SlaveExited,
    /// Tag 6: the slave was closed, shut down or killed, or its connection failed.
    Closed,
}

impl ErrorKind {
    /// Every kind, in tag order (a kind's position is its tag on the wire).
    ///
    /// ```
    /// use distio_proto::ErrorKind;
    /// assert_eq!(ErrorKind::ALL[4], ErrorKind::TimedOut);
    /// ```
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::UnknownTask,
        ErrorKind::HandlerFailed,
        ErrorKind::HandlerPanicked,
        ErrorKind::Paused,
        ErrorKind::TimedOut,
        ErrorKind::SlaveExited,
        ErrorKind::Closed,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::UnknownTask => "unknown task",
            ErrorKind::HandlerFailed => "handler failed",
            ErrorKind::HandlerPanicked => "handler panicked",
            ErrorKind::Paused => "paused",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::SlaveExited => "slave exited",
            ErrorKind::Closed => "closed",
        })
    }
}

/// Connection control. The order is the wire tag and is frozen.
///
/// ```
/// use distio_proto::Control;
/// assert_ne!(Control::Close, Control::Shutdown);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// Tag 0, master → slave: stop now. The slave takes nothing new, runs its close hook and
    /// exits with status 0; requests still running are abandoned.
    Close,
    /// Tag 1, master → slave: drain, then close. The slave answers new requests with a
    /// `Closed` error, lets running ones finish and sends their responses, then closes.
    Shutdown,
    /// Tag 2, either way: please answer with [`Control::Pong`] carrying the same number.
    Ping(u64),
    /// Tag 3, either way: the answer to [`Control::Ping`].
    Pong(u64),
}

/// A named event a slave emits to its master.
///
/// ```
/// use distio_proto::{Event, Payload};
/// let ev = Event { name: "progress".into(), payload: Payload::encode(&0.5f64)? };
/// assert_eq!(ev.payload.decode::<f64>()?, 0.5);
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's name.
    pub name: String,
    /// The event's data.
    pub payload: Payload,
}
