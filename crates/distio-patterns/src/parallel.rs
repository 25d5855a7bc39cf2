//! Parallel: a set of tasks sent out together.

use distio_proto::{Metadata, Payload};
use futures_util::future::join_all;
use serde::Serialize;
use std::sync::Arc;

use crate::progress::{ProgressFn, Tracker, gather};
use crate::{IntoTransport, PatternError, Progress, Replies, SharedTransport};

/// Where a parallel task goes: one transport, or whichever of several is least busy when
/// the task is sent. Anything that is [`IntoTransport`] converts into a `Pick::One`, so
/// [`Parallel::add`] takes `&slave`, `slave` or `Pick::least_busy(&slaves)` alike.
///
/// ```
/// use distio_patterns::{InProcess, Pick};
/// use distio_slave::TaskRegistry;
///
/// let workers = InProcess::many(3, TaskRegistry::new());
/// assert!(matches!(Pick::one(&workers[0]), Pick::One(_)));
/// assert!(matches!(Pick::least_busy(&workers), Pick::LeastBusy(ts) if ts.len() == 3));
/// assert!(matches!(Pick::from(&workers[1]), Pick::One(_)));
/// ```
#[derive(Clone)]
pub enum Pick {
    /// Always this transport.
    One(SharedTransport),
    /// The one of these with the fewest requests in flight at send time (the first on a tie).
    LeastBusy(Vec<SharedTransport>),
}

impl std::fmt::Debug for Pick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pick::One(t) => f.debug_tuple("One").field(&t.id()).finish(),
            Pick::LeastBusy(ts) => f
                .debug_tuple("LeastBusy")
                .field(&ts.iter().map(|t| t.id()).collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl Pick {
    /// Always `transport` (owned, or a borrowed handle such as `&Slave`).
    pub fn one(transport: impl IntoTransport) -> Self {
        Pick::One(transport.into_transport())
    }

    /// The least busy of `transports` at send time: `&SlaveArray`, `&[Slave]`,
    /// `slaves.iter()`, a `Vec` of owned transports, …
    pub fn least_busy(transports: impl IntoIterator<Item: IntoTransport>) -> Self {
        Pick::LeastBusy(
            transports
                .into_iter()
                .map(IntoTransport::into_transport)
                .collect(),
        )
    }

    fn choose(&self) -> Option<&SharedTransport> {
        match self {
            Pick::One(t) => Some(t),
            Pick::LeastBusy(ts) => ts.iter().min_by_key(|t| t.in_flight()),
        }
    }
}

impl<T: IntoTransport> From<T> for Pick {
    fn from(transport: T) -> Self {
        Pick::one(transport)
    }
}

/// Identifies a task added to a [`Parallel`], to remove it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParallelTaskId(u64);

struct Job {
    id: ParallelTaskId,
    task: String,
    payload: Payload,
    meta: Metadata,
    target: Pick,
}

/// A set of tasks, each with its data, metadata and target, sent out together; reusable.
/// Tasks for the same transport are sent one right after the other, so an async slave runs
/// them concurrently.
///
/// ```
/// use distio_patterns::prelude::*;
/// use distio_patterns::{InProcess, Parallel, Pick};
/// use distio_slave::TaskRegistry;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("square", |n: u64, _| async move { Ok(n * n) })?;
/// let workers = InProcess::many(2, tasks);
///
/// let mut parallel = Parallel::new();
/// let first = parallel.add("square", &3u64, &workers[0])?;
/// parallel.add("square", &4u64, Pick::least_busy(&workers))?;
/// assert_eq!(parallel.execute().await?.values::<u64>()?, vec![9, 16]);
///
/// parallel.remove(first);
/// let runs = parallel.times(3).await?; // one result set per run
/// assert_eq!(runs.len(), 3);
/// assert!(parallel.times(0).await?.is_empty()); // no runs, no result sets
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct Parallel {
    jobs: Vec<Job>,
    next_id: u64,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("jobs", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

impl Parallel {
    /// An empty set.
    pub fn new() -> Self {
        Parallel::default()
    }

    /// Adds `task` with `data` for `target` (a transport, a borrowed handle such as
    /// `&slave`, or a [`Pick`]); returns a handle to remove it with.
    pub fn add<T: Serialize + ?Sized>(
        &mut self,
        task: impl Into<String>,
        data: &T,
        target: impl Into<Pick>,
    ) -> Result<ParallelTaskId, PatternError> {
        self.add_with_meta(task, data, Metadata::new(), target)
    }

    /// Adds `task` with `data` and `meta` for `target`.
    pub fn add_with_meta<T: Serialize + ?Sized>(
        &mut self,
        task: impl Into<String>,
        data: &T,
        meta: Metadata,
        target: impl Into<Pick>,
    ) -> Result<ParallelTaskId, PatternError> {
        let target = target.into();
        if matches!(&target, Pick::LeastBusy(ts) if ts.is_empty()) {
            return Err(PatternError::NoTransports {
                pattern: "parallel task",
            });
        }
        let payload = Payload::encode(data).map_err(PatternError::Encode)?;
        let id = ParallelTaskId(self.next_id);
        self.next_id += 1;
        self.jobs.push(Job {
            id,
            task: task.into(),
            payload,
            meta,
            target,
        });
        Ok(id)
    }

    /// Removes a task; false if it was not (or no longer) in the set.
    pub fn remove(&mut self, id: ParallelTaskId) -> bool {
        let before = self.jobs.len();
        self.jobs.retain(|job| job.id != id);
        self.jobs.len() != before
    }

    /// Number of tasks in the set.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// True if the set has no tasks.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Calls `report` after every finished task of a run.
    pub fn on_progress(&mut self, report: impl Fn(Progress) + Send + Sync + 'static) -> &mut Self {
        self.progress = Some(Arc::new(report));
        self
    }

    /// Sends every task and waits for all; replies come in the order tasks were added.
    /// With catch-all on for a task, its error is returned as `Err` (the first, in order).
    pub async fn execute(&self) -> Result<Replies, PatternError> {
        self.check()?;
        let tracker = Tracker::new(self.progress.clone(), Some(self.jobs.len()));
        self.run_once(&tracker).await
    }

    /// Runs the whole set `times` times, all at once; returns one result set per run, so
    /// `times(0)` runs nothing and returns no result sets.
    pub async fn times(&self, times: usize) -> Result<Vec<Replies>, PatternError> {
        if times == 0 {
            return Ok(Vec::new());
        }
        self.check()?;
        let tracker = Tracker::new(self.progress.clone(), Some(self.jobs.len() * times));
        join_all((0..times).map(|_| self.run_once(&tracker)))
            .await
            .into_iter()
            .collect()
    }

    fn check(&self) -> Result<(), PatternError> {
        if self.jobs.is_empty() {
            return Err(PatternError::Empty {
                pattern: "parallel",
                what: "tasks",
            });
        }
        Ok(())
    }

    async fn run_once(&self, tracker: &Tracker) -> Result<Replies, PatternError> {
        let sends = self.jobs.iter().map(|job| async move {
            // Chosen when the send starts, so earlier sends of this run count as busy.
            let transport = job.target.choose().ok_or(PatternError::NoTransports {
                pattern: "parallel task",
            })?;
            tracker
                .track(transport.send(&job.task, job.payload.clone(), job.meta.clone()))
                .await
        });
        gather(sends).await
    }
}
