//! Distributed patterns over distio slaves: parallel, pipeline, workpool and scatter.
//!
//! Every pattern is written against the [`Transport`] trait: "run this task with this
//! data and metadata, and tell me how busy you are". A `distio_master::Slave` is a
//! transport; so is [`InProcess`], which runs the tasks of a `distio_slave::TaskRegistry`
//! in this process with the same semantics (handy in tests); and so is anything you
//! implement it for (see `docs/transports.md`).
//!
//! Every pattern takes its transports as they come ([`IntoTransport`]): owned, or borrowed
//! handles such as `&slave`, `&slaves` (a `SlaveArray`), `&slaves[1..]` or
//! `slaves.iter().filter(..)`, whose cheap handles it clones.
//!
//! - [`Parallel`]: a set of tasks sent out together, repeatable, `times(n)`.
//! - [`Pipeline`]: each step's value feeds the next step; an [`Intercept`] after a step
//!   may change the value, finish the pipeline early or fail it with your own error.
//! - [`Workpool`]: tasks go to a free transport, idle first, round robin, keeping the
//!   numbers each transport is sent even ([`Balance`]).
//! - [`Scatter`]: one task over a list of items, round robin or in contiguous chunks.
//!
//! Nothing to do is an empty result, not an error: a scatter with no items, `times(0)`
//! and `run_all` over no items return no replies.
//!
//! Every pattern answers with a [`Reply`] or [`Replies`]. A reply's helpers are the
//! [`Answer`] trait of `distio_master`, shared with its responses
//! (`use distio_patterns::prelude::*;` brings it into scope); [`Replies`] is
//! `distio_master`'s [`Answers`] collection, the type a broadcast's `ResponseArray` is
//! too, so both have the same helpers, written once.
//!
//! Patterns that run many tasks report [`Progress`] through a callback.
//!
//! ```
//! use distio_patterns::prelude::*;
//! use distio_slave::TaskRegistry;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let mut tasks = TaskRegistry::new();
//! tasks.register("square", |n: u64, _| async move { Ok(n * n) })?;
//! let workers = InProcess::many(4, tasks);
//! let pool = Workpool::new(&workers)?;
//! let squares = pool.run_all("square", &[1u64, 2, 3]).await?;
//! assert_eq!(squares.sum::<u64>()?, 14);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod error;
mod parallel;
mod pipeline;
mod progress;
mod reply;
mod scatter;
mod transport;
mod workpool;

pub use distio_master::{Answer, Answers, Order};
pub use error::PatternError;
pub use parallel::{Parallel, ParallelTaskId, Pick};
pub use pipeline::{Intercept, Pipeline};
pub use progress::{Progress, ProgressFn};
pub use reply::{Replies, Reply, ReplyField};
pub use scatter::{Scatter, chunk_sizes};
pub use transport::{InProcess, IntoTransport, SharedTransport, Transport, shared};
pub use workpool::{Balance, DEFAULT_MAX_HOLD_BACK, Workpool};

/// The traits and types most programs use: `use distio_patterns::prelude::*;`.
///
/// The helpers of one reply ([`Answer::value`], …) are trait methods shared with
/// `distio_master`, whose prelude this includes; those of [`Replies`] ([`Answers::sum`], …)
/// are inherent.
///
/// ```
/// use distio_patterns::prelude::*;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = distio_slave::TaskRegistry::new();
/// tasks.register("square", |n: u64, _| async move { Ok(n * n) })?;
/// let pool = Workpool::new(&InProcess::many(2, tasks))?;
/// let total: u64 = pool.run_all("square", &[1u64, 2]).await?.sum()?;
/// assert_eq!(total, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub mod prelude {
    pub use crate::{
        InProcess, Parallel, PatternError, Pipeline, Replies, Reply, ReplyField, Scatter,
        Transport, Workpool,
    };
    pub use distio_master::prelude::*;
}
