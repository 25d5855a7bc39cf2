//! The bounds a slave keeps on what it holds in memory for its master, and on its logs.

use std::time::Duration;

/// How often a warning that a peer (or a task) can repeat per frame is logged at most.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// How many events a slave queues for its master by default; see
/// [`SlaveProcess::event_queue`](crate::SlaveProcess::event_queue).
///
/// Events wait in this queue until the serving loop writes them to the master. A master
/// that stops reading fills it; then [`SlaveHandle::emit`](crate::SlaveHandle::emit) drops
/// the event and returns [`SlaveError::EventQueueFull`](crate::SlaveError::EventQueueFull),
/// and [`SlaveHandle::emit_wait`](crate::SlaveHandle::emit_wait) waits for room.
///
/// ```
/// use distio_slave::{DEFAULT_EVENT_QUEUE, SlaveProcess};
///
/// assert_eq!(DEFAULT_EVENT_QUEUE, 1024);
/// // A slave that emits in bursts can queue more.
/// let slave = SlaveProcess::new().event_queue(4 * DEFAULT_EVENT_QUEUE);
/// # drop(slave);
/// ```
pub const DEFAULT_EVENT_QUEUE: usize = 1024;

/// How many handlers that wait a slave runs at once by default; see
/// [`SlaveProcess::max_running`](crate::SlaveProcess::max_running).
///
/// A handler that finishes at its first poll never counts. Once this many are waiting, the
/// slave stops reading its connection until one finishes: the master's further requests
/// wait in the socket (and then in the master), and responses, events and pongs for what
/// was already read keep flowing.
///
/// ```
/// use distio_slave::{DEFAULT_MAX_RUNNING, SlaveProcess};
///
/// assert_eq!(DEFAULT_MAX_RUNNING, 4096);
/// // A slave whose handlers each hold a large buffer runs fewer at once.
/// let slave = SlaveProcess::new().max_running(64);
/// # drop(slave);
/// ```
pub const DEFAULT_MAX_RUNNING: usize = 4096;
