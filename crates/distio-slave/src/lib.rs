//! The distio slave runtime.
//!
//! A slave program registers named async tasks and serves them to the master that started
//! it. Requests run concurrently on the slave's serving task, so a task that awaits never
//! holds up another (CPU-heavy work belongs in `tokio::task::spawn_blocking`); a handler's
//! error becomes an error response carrying its message, and a handler panic becomes an
//! error response while the slave goes on serving. A handler is first polled as soon as its
//! request is read: one that finishes without waiting is answered right there, and only
//! handlers that wait join the set of running ones. That set is bounded
//! ([`DEFAULT_MAX_RUNNING`], see [`SlaveProcess::max_running`]): when it is full, the slave
//! stops reading its connection until a handler finishes, so a master sending faster than
//! the slave works is held back by the socket instead of growing the slave's memory.
//!
//! ```no_run
//! use distio_slave::SlaveProcess;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), distio_slave::SlaveError> {
//!     SlaveProcess::new()
//!         .task("say hello", |_: (), _ctx| async { Ok("Hello World!") })
//!         .task("square", |n: u64, _ctx| async move { Ok(n * n) })
//!         .serve()
//!         .await
//! }
//! ```
//!
//! - Unknown task: error response `Slave #<id> does not listen to task "<name>"`.
//! - [`SlaveHandle::pause`]: every request is answered with a "not accepting messages" error
//!   until [`SlaveHandle::resume`].
//! - Close: the slave takes nothing new, runs the [`SlaveProcess::on_close`] hook, and
//!   [`SlaveProcess::serve`] returns. Shutdown: requests already running finish first.
//! - If the master goes away, `serve` returns at once.
//! - [`SlaveHandle::emit`] sends the master a named event. Events wait in a bounded queue
//!   ([`DEFAULT_EVENT_QUEUE`] frames, see [`SlaveProcess::event_queue`]) until they are
//!   written; when a master that stops reading has filled it, `emit` drops the event and
//!   returns [`SlaveError::EventQueueFull`] (counted in [`SlaveHandle::dropped_events`]),
//!   while [`SlaveHandle::emit_wait`] waits for room. Events queued when the slave closes
//!   (including those the close hook emits) are still sent, within a grace period.
//! - [`launched_as_slave`] lets one binary be both master and slave. Once `serve` has taken
//!   the master's connection, the variable naming it
//!   ([`SLAVE_FD_ENV`](distio_proto::local::SLAVE_FD_ENV)) is gone from the environment:
//!   programs the slave starts never see it, and `launched_as_slave` returns `false`.
//!   [`take_connection`], called first thing in `main` before the runtime starts its
//!   threads, takes it (and removes the variable) while nothing can race that; `serve`
//!   then uses it.

mod context;
mod error;
mod failure;
mod inherited;
mod limits;
mod outgoing;
mod registry;
mod runtime;
mod serving;
mod typed;

pub use context::{SlaveHandle, TaskContext};
pub use distio_proto::Task;
pub use error::SlaveError;
pub use failure::TaskFailure;
pub use inherited::{launched_as_slave, take_connection};
pub use limits::{DEFAULT_EVENT_QUEUE, DEFAULT_MAX_RUNNING};
pub use registry::{TaskRegistry, TaskRun};
pub use runtime::SlaveProcess;
