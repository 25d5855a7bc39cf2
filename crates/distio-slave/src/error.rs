//! The one error type of this crate.

use distio_proto::ProtoError;

/// What can go wrong while setting up or running a slave.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlaveError {
    /// Two tasks were registered under one name.
    #[error("a task named \"{0}\" is already registered; give each task its own name")]
    DuplicateTask(String),

    /// `serve` was called in a process no distio master started.
    #[error(
        "this process was not launched as a distio slave ({env} is not set); start it through \
         distio-master, or check `launched_as_slave()` first"
    )]
    NotLaunchedAsSlave {
        /// The environment variable that was missing.
        env: &'static str,
    },

    /// The inherited connection named in the environment is unusable.
    #[error("the master's connection (fd {fd} from {env}) is unusable: {reason}")]
    BadInheritedConnection {
        /// The environment variable that named it.
        env: &'static str,
        /// Its value.
        fd: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The master closed the connection before the handshake finished.
    #[error("the master closed the connection before sending its hello")]
    NoHello,

    /// The master's first frame was not a hello.
    #[error(
        "the master's first frame was a {0} frame, not a hello; it does not speak the distio handshake"
    )]
    UnexpectedFirstFrame(&'static str),

    /// Reading, writing or decoding the connection failed.
    #[error(transparent)]
    Protocol(#[from] ProtoError),

    /// An event was emitted by a slave that has no master connection.
    #[error("cannot emit event \"{0}\": this slave is not connected to a master")]
    NotConnected(String),

    /// An event was dropped: the queue of events waiting to be written to the master is
    /// full, because the master is not reading them.
    #[error(
        "event \"{name}\" was dropped: the master is not reading, and the {capacity} events \
         already queued for it fill the slave's event queue; emit fewer events, wait for room \
         with `SlaveHandle::emit_wait`, or queue more with `SlaveProcess::event_queue`"
    )]
    EventQueueFull {
        /// The event's name.
        name: String,
        /// How many events the queue holds.
        capacity: usize,
    },
}
