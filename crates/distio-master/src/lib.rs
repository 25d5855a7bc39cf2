//! The distio master: start slave processes, send them named tasks, get typed responses.
//!
//! A [`Master`] starts slaves ([`Master::spawn`]) from an executable — another program, or
//! the running one ([`SpawnOptions::current_exe`]) — and talks to each over a Unix socket
//! pair the child inherits. A [`Slave`] handle sends requests ([`Slave::exec`]);
//! [`Master::tell`] and [`SlaveArray::exec`] broadcast one, encoding its data once.
//!
//! ```no_run
//! use distio_master::prelude::*;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), distio_master::MasterError> {
//!     let master = Master::new();
//!     let slave = master.spawn(SpawnOptions::new("./target/debug/examples/hello-slave")).await?;
//!     let hello: String = slave.exec("say hello", &()).await?.value()?;
//!     println!("{hello}");
//!     slave.close().await?;
//!     Ok(())
//! }
//! ```
//!
//! ## Finding slaves
//!
//! [`Master::all`] gives the live slaves as a [`SlaveArray`]; its filters narrow it and its
//! picks choose one: `master.all().idle().in_group("x").least_busy()`. [`Master::slave`]
//! finds one by handle, id or alias, and [`Master::slaves`] several. [`Master::tell`]
//! takes one target (`&slave`, `"alias"`, an id, [`Target::group`]) or a collection.
//!
//! ## Requests
//!
//! - Every request resolves to a [`Response`]: value or error, sender, request id, task,
//!   sent and received times, duration. Its helpers come from the [`Answer`] trait
//!   (`use distio_master::prelude::*;`). A broadcast resolves to a [`ResponseArray`], the
//!   [`Answers`] collection of responses, whose helpers (`values`, `sum`, `join_strings`,
//!   `sort_by`, …) are its own.
//! - Timeouts and catch-all come from three levels: [`Master::set_default_timeout`],
//!   [`Slave::set_default_timeout`], and the request's own ([`Exec::timeout`]). The most
//!   specific level that sets one ([`Timeout::After`] or [`Timeout::Never`], not
//!   [`Timeout::Inherit`]) wins; with none set there is no timeout. A zero timeout times
//!   out at once, unsent. A timed-out request resolves with a `TimedOut` error; its late
//!   reply is dropped.
//! - With catch-all on, an error response comes back as `Err(MasterError::Task)`; without,
//!   as `Ok(response)` with [`Response::error`] set.
//! - A timeout runs on the master's clock alone: it fires whether the slave answers late,
//!   never answers, never finishes its handshake or never yields.
//!
//! ## Bounds
//!
//! Every queue between a caller and a slave has a limit, and every wait a bound:
//!
//! - At most [`DEFAULT_MAX_IN_FLIGHT`] requests per slave are unanswered at once
//!   ([`SpawnOptions::max_in_flight`]); further requests wait, first come first served,
//!   unsent, with their timeouts running.
//! - At most [`DEFAULT_OUTBOX_LIMIT`] bytes wait for a slave to read them
//!   ([`SpawnOptions::outbox_limit`]); beyond that, new requests wait unencoded, first
//!   come first served, until the slave has read enough. Frames of requests that timed out or were dropped before being
//!   written are never sent.
//! - An event subscription holds at most [`EVENT_QUEUE_LIMIT`] unread events; newer ones
//!   are dropped and counted ([`Events::dropped`]).
//! - [`Slave::ready`] waits at most [`READY_TIMEOUT`], [`Slave::ping`] at most
//!   [`PING_TIMEOUT`]; [`Slave::shutdown`] waits at most the
//!   shutdown grace ([`DEFAULT_SHUTDOWN_GRACE`]) and then closes; [`Slave::close`] waits at
//!   most the close grace ([`DEFAULT_CLOSE_GRACE`]) and then kills.
//! - Warnings a slave can repeat (a stray frame, an unanswered ping) are rate-limited.
//!
//! ## Lifecycle
//!
//! [`Slave::close`] (now), [`Slave::shutdown`] (after pending requests), [`Slave::kill`]
//! (a signal). Afterwards every request fails at once with an error naming the slave, and
//! [`Response::end_reason`] says which of these it was. The slave leaves [`Master::all`]
//! (and so every query built on it) and [`Master::slave`], and frees its alias, the moment one of these is called (or its
//! link ends), not when its process has been reaped. When a slave exits or crashes, its
//! pending requests complete at once with a `SlaveExited` error carrying the exit code or
//! signal; a slave that sends garbage has its link closed.
//! Dropping the master (and every handle) kills the slaves; a slave also exits when its
//! master's end of the socket closes, and on Linux when the master process dies — the
//! process, however it dies, not the thread that spawned the slave.
//!
//! Each slave leads its own process group. When it ends, the processes it started that are
//! still in that group are killed too, also when the master process is killed outright (a
//! helper process, the group reaper, sees to that). A process that left the group
//! (`setsid`, its own `setpgid`) survives; see [`SpawnOptions`].

mod answer;
mod call;
mod cluster;
mod defaults;
mod end;
mod error;
mod events;
mod exec_future;
pub mod hosted;
mod limits;
mod link;
mod location;
mod master;
mod pending;
mod process;
mod remote;
mod request;
mod response;
mod room;
mod slave;
mod slave_array;
mod slave_core;
mod spawn;
mod sync;
mod target;
mod timeout;

pub use answer::{Answer, Answers, Order};
pub use call::{Call, CallFuture};
pub use cluster::{
    Cluster, ClusterBuilder, DEFAULT_PROBE_FIRST, DEFAULT_PROBE_MAX, HostHealth, HostRefusal,
    HostView, LeastLoaded, Placement, RoundRobin,
};
pub use distio_proto::{ErrorKind, Metadata, Payload, SlaveId, Task, TaskError};
pub use end::{EndReason, ProtocolViolation};
pub use error::MasterError;
pub use events::{EVENT_QUEUE_LIMIT, Events, SlaveEvent};
pub use exec_future::ExecFuture;
pub use limits::{
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_OUTBOX_LIMIT, DEFAULT_SHUTDOWN_GRACE, PING_TIMEOUT,
    READY_TIMEOUT,
};
pub use link::{FrameSink, FrameStream, Link};
pub use location::Location;
pub use master::{Master, Tell};
pub use process::Signal;
pub use remote::{
    CONNECT_TIMEOUT, ClientTls, DEFAULT_SERVE_PORT, Host, HostLoss, LinkSettings, LossCause,
    MAX_SLURM_HOSTS, NodelistProblem, expand_slurm_nodelist,
};
pub use request::{Broadcast, Exec};
pub use response::{Pipe, Response, ResponseArray, ResponseField};
pub use slave::Slave;
pub use slave_array::SlaveArray;
pub use slave_core::SlaveState;
pub use spawn::{
    CAPTURE_LIMIT, CapturedOutput, DEFAULT_CLOSE_GRACE, LINE_LIMIT, Output, SpawnOptions,
};
pub use target::{IntoTargets, Target};
pub use timeout::Timeout;

/// The traits and types most programs use: `use distio_master::prelude::*;`.
///
/// The helpers of one response ([`Answer::value`], [`Answer::error`], …) are trait methods,
/// shared with `distio_patterns`; this brings them into scope along with the types. (Those
/// of a collection, [`Answers::sum`] and the rest, are inherent and need no import.)
///
/// ```no_run
/// use distio_master::prelude::*;
/// # async fn demo(master: Master) -> Result<(), MasterError> {
/// let slave = master.spawn(SpawnOptions::new("./worker")).await?;
/// let n: u64 = slave.exec("square", &3u64).await?.value()?;
/// # Ok(()) }
/// ```
pub mod prelude {
    pub use crate::{
        Answer, Answers, Master, MasterError, Order, Response, ResponseArray, ResponseField, Slave,
        SlaveArray, SpawnOptions, Target, Timeout,
    };
}
