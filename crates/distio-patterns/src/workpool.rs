//! Workpool: tasks go to a free slave, idle first, round robin, keeping counts even.

mod acquire;
mod balance;
mod slots;

use distio_proto::{ErrorKind, Metadata, Payload};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use balance::Balance;
use slots::{Rule, Slots};

use crate::progress::{ProgressFn, Tracker};
use crate::transport::collect_transports;
use crate::{
    Answer, IntoTransport, PatternError, Progress, Replies, Reply, SharedTransport, Transport,
};

/// How long, by default, a [`Workpool`] with [`Balance::EvenCounts`] keeps a task waiting
/// for a lagging transport while another is free (see [`Workpool::max_hold_back`]).
///
/// ```
/// assert_eq!(distio_patterns::DEFAULT_MAX_HOLD_BACK.as_secs(), 2);
/// ```
pub const DEFAULT_MAX_HOLD_BACK: Duration = Duration::from_secs(2);

/// Runs tasks on a fixed set of transports, choosing for each task a free one: idle
/// transports first, then the one sent the fewest tasks, in round-robin order from the one
/// after the last used. At most [`max_in_flight`](Self::max_in_flight) tasks run on one
/// transport at a time; further tasks wait in FIFO order for a slot.
///
/// By default ([`Balance::EvenCounts`]) a transport takes the next task only if that keeps
/// the numbers of tasks sent to the live transports within `max_in_flight` of each other:
/// with one task in flight each (the default), the counts differ by at most one, by design
/// rather than by timing, also under load. The price is that a transport that is slow
/// holds the others back once they are `max_in_flight` tasks ahead of it — but for a
/// bounded time: a task kept waiting that long ([`max_hold_back`](Self::max_hold_back),
/// default [`DEFAULT_MAX_HOLD_BACK`]) while a transport is free goes to the free one, so a
/// transport that hangs never stalls the pool. With
/// [`balance(Balance::FirstFree)`](Self::balance) the next task goes to whichever
/// transport frees a slot first: faster transports take more, and counts are not bounded.
///
/// A transport whose slave exits (its task fails with `SlaveExited` or `Closed`) gets no
/// more work and no longer counts for the balance; that task fails with the error, or with
/// [`retry_on_exit`](Self::retry_on_exit) goes to another transport. When none is left,
/// waiting tasks fail with [`PatternError::PoolExhausted`].
///
/// ```
/// use distio_patterns::prelude::*;
/// use distio_patterns::{InProcess, Workpool};
/// use distio_slave::TaskRegistry;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("square", |n: u64, _| async move { Ok(n * n) })?;
/// let pool = Workpool::new(InProcess::many(3, tasks))?;
///
/// assert_eq!(pool.run("square", &7u64).await?.value::<u64>()?, 49);
/// let all = pool.run_all("square", &[1u64, 2, 3, 4]).await?;
/// assert_eq!(all.values::<u64>()?, vec![1, 4, 9, 16]);
/// // Loop while a predicate on (iteration, replies so far) holds.
/// let ten = pool.run_while(|i, _done| i < 10, "square", &2u64).await?;
/// assert_eq!(ten.len(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Workpool {
    transports: Arc<[SharedTransport]>,
    max_in_flight: usize,
    balance: Balance,
    max_hold_back: Duration,
    retry: bool,
    progress: Option<ProgressFn>,
    slots: Arc<Mutex<Slots>>,
}

impl std::fmt::Debug for Workpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workpool")
            .field("transports", &self.transports.len())
            .field("max_in_flight", &self.max_in_flight)
            .field("balance", &self.balance)
            .field("max_hold_back", &self.max_hold_back)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Workpool {
    /// A pool over `transports` (at least one): `&slaves` for a `SlaveArray` (the cheap
    /// handles are cloned), `&slaves[1..]`, `slaves.iter().filter(..)`, a `Vec` of owned
    /// transports, … — anything iterable over [`IntoTransport`] items.
    ///
    /// ```
    /// use distio_patterns::{InProcess, PatternError, Workpool};
    /// use distio_slave::TaskRegistry;
    ///
    /// let workers = InProcess::many(3, TaskRegistry::new());
    /// assert_eq!(Workpool::new(&workers)?.live(), 3);
    /// assert_eq!(Workpool::new(&workers[1..])?.live(), 2);
    /// assert_eq!(Workpool::new([&workers[0]])?.live(), 1);
    /// assert!(matches!(Workpool::new(&workers[..0]), Err(PatternError::NoTransports { .. })));
    /// # Ok::<(), PatternError>(())
    /// ```
    pub fn new(transports: impl IntoIterator<Item: IntoTransport>) -> Result<Self, PatternError> {
        let transports = collect_transports(transports, "workpool")?;
        let n = transports.len();
        Ok(Workpool {
            transports: transports.into(),
            max_in_flight: 1,
            balance: Balance::default(),
            max_hold_back: DEFAULT_MAX_HOLD_BACK,
            retry: false,
            progress: None,
            slots: Arc::new(Mutex::new(Slots::new(n))),
        })
    }

    /// Lets up to `max` tasks run on one transport at a time (default 1; at least 1). With
    /// [`Balance::EvenCounts`] the numbers of tasks the transports are sent then differ by
    /// at most `max`.
    ///
    /// ```
    /// use distio_patterns::{InProcess, Workpool};
    /// use distio_slave::TaskRegistry;
    ///
    /// let pool = Workpool::new(InProcess::many(2, TaskRegistry::new()))?.max_in_flight(8)?;
    /// # let _ = pool;
    /// # Ok::<(), distio_patterns::PatternError>(())
    /// ```
    pub fn max_in_flight(mut self, max: usize) -> Result<Self, PatternError> {
        if max == 0 {
            return Err(PatternError::Invalid {
                pattern: "workpool",
                reason: "max_in_flight must be at least 1".into(),
            });
        }
        self.max_in_flight = max;
        Ok(self)
    }

    /// How tasks are shared among the transports (default [`Balance::EvenCounts`]).
    ///
    /// ```
    /// use distio_patterns::prelude::*;
    /// use distio_patterns::{Balance, InProcess, Workpool};
    /// use distio_slave::TaskRegistry;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let mut tasks = TaskRegistry::new();
    /// tasks.register("square", |n: u64, _| async move { Ok(n * n) })?;
    /// // Transports of unequal speed: throughput over even counts.
    /// let pool = Workpool::new(InProcess::many(2, tasks))?.balance(Balance::FirstFree);
    /// assert_eq!(pool.run_all("square", &[3u64; 4]).await?.sum::<u64>()?, 36);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }

    /// With [`Balance::EvenCounts`], the longest a task waits for a transport that lags
    /// behind while another transport is free (default [`DEFAULT_MAX_HOLD_BACK`]); after
    /// that, free transports take the waiting tasks whatever their counts. Counts then
    /// differ by more than `max_in_flight` only because a transport was stuck that long.
    ///
    /// ```
    /// use distio_patterns::{InProcess, Workpool};
    /// use distio_slave::TaskRegistry;
    /// use std::time::Duration;
    ///
    /// let pool = Workpool::new(InProcess::many(2, TaskRegistry::new()))?
    ///     .max_hold_back(Duration::from_millis(500));
    /// # let _ = pool;
    /// # Ok::<(), distio_patterns::PatternError>(())
    /// ```
    #[must_use]
    pub fn max_hold_back(mut self, limit: Duration) -> Self {
        self.max_hold_back = limit;
        self
    }

    /// When on, a task whose slave exits under it is sent again to another slave.
    #[must_use]
    pub fn retry_on_exit(mut self, retry: bool) -> Self {
        self.retry = retry;
        self
    }

    /// Calls `report` after every finished task of [`run_all`](Self::run_all) and
    /// [`run_while`](Self::run_while).
    #[must_use]
    pub fn on_progress(mut self, report: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(report));
        self
    }

    /// How many tasks each transport has been sent, by transport id, in pool order.
    pub fn sent_counts(&self) -> Vec<(u64, usize)> {
        let slots = self.lock();
        self.transports
            .iter()
            .zip(slots.sent())
            .map(|(t, &n)| (t.id(), n))
            .collect()
    }

    /// Transports still taking work.
    pub fn live(&self) -> usize {
        self.lock().live()
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Slots in the pool: tasks that can run at once.
    fn capacity(&self) -> usize {
        self.transports.len() * self.max_in_flight
    }

    fn rule(&self) -> Rule {
        Rule {
            max_in_flight: self.max_in_flight,
            balance: self.balance,
        }
    }

    /// The rule for tasks held back too long: any free transport.
    fn relaxed_rule(&self) -> Rule {
        Rule {
            balance: Balance::FirstFree,
            ..self.rule()
        }
    }

    /// Runs `task` on `data` on the next free transport ("do" in Dist.io).
    pub async fn run<T: Serialize + ?Sized>(
        &self,
        task: &str,
        data: &T,
    ) -> Result<Reply, PatternError> {
        self.run_payload(
            task,
            Payload::encode(data).map_err(PatternError::Encode)?,
            Metadata::new(),
        )
        .await
    }

    /// [`run`](Self::run) with encoded data and metadata.
    pub async fn run_payload(
        &self,
        task: &str,
        payload: Payload,
        meta: Metadata,
    ) -> Result<Reply, PatternError> {
        let mut attempts = 0;
        loop {
            let Some(mut slot) = self.acquire().await else {
                return Err(PatternError::PoolExhausted {
                    task: task.to_owned(),
                });
            };
            attempts += 1;
            // Straight to the transport: a method call on the `Arc` would go through its
            // `Transport` impl, a second boxed future per task.
            let transport: &dyn Transport = &*self.transports[slot.index];
            let result = transport.send(task, payload.clone(), meta.clone()).await;
            slot.died = slave_gone(&result);
            let retry = slot.died && self.retry && attempts < self.transports.len();
            drop(slot);
            if !retry {
                return result;
            }
            tracing::debug!(
                task,
                "slave exited under a workpool task; sending it to another"
            );
        }
    }

    /// Runs `task` once per item of `items`; replies come in item order.
    ///
    /// Items start in order, and only as many at a time as the pool has slots, so a long
    /// list costs no more memory in flight than a short one, and a task another caller
    /// queued meanwhile is not put behind the rest of the list.
    pub async fn run_all<T: Serialize>(
        &self,
        task: &str,
        items: &[T],
    ) -> Result<Replies, PatternError> {
        let payloads = items
            .iter()
            .map(|item| Payload::encode(item).map_err(PatternError::Encode))
            .collect::<Result<Vec<_>, _>>()?;
        let tracker = Tracker::new(self.progress.clone(), Some(payloads.len()));
        let mut results: Vec<Option<Result<Reply, PatternError>>> = std::iter::repeat_with(|| None)
            .take(payloads.len())
            .collect();
        let mut pending = payloads.into_iter().enumerate();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < self.capacity() {
                let Some((i, payload)) = pending.next() else {
                    break;
                };
                let tracker = &tracker;
                running.push(async move {
                    let run = self.run_payload(task, payload, Metadata::new());
                    (i, tracker.track(run).await)
                });
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|result| result.expect("every item ran"))
            .collect()
    }

    /// Runs `task` on `data` again and again while `keep_going(iteration, replies so far)`
    /// is true, keeping every transport busy; the predicate is asked before each send, with
    /// the replies that have arrived (in arrival order). Returns the replies in iteration
    /// order.
    pub async fn run_while<T, P>(
        &self,
        mut keep_going: P,
        task: &str,
        data: &T,
    ) -> Result<Replies, PatternError>
    where
        T: Serialize + ?Sized,
        P: FnMut(usize, &Replies) -> bool,
    {
        let payload = Payload::encode(data).map_err(PatternError::Encode)?;
        let tracker = Tracker::new(self.progress.clone(), None);
        let mut running = FuturesUnordered::new();
        let mut arrived = Replies::default();
        let mut order = Vec::new();
        let mut next = 0;
        let mut stopped = false;
        loop {
            while !stopped && running.len() < self.capacity() {
                if keep_going(next, &arrived) {
                    let (payload, tracker) = (payload.clone(), &tracker);
                    running.push(async move {
                        let result =
                            tracker.track(self.run_payload(task, payload, Metadata::new()));
                        (next, result.await)
                    });
                    next += 1;
                } else {
                    stopped = true;
                }
            }
            let Some((iteration, result)) = running.next().await else {
                break;
            };
            arrived.push(result?);
            order.push(iteration);
        }
        let mut numbered: Vec<(usize, Reply)> = order.into_iter().zip(arrived).collect();
        numbered.sort_by_key(|(i, _)| *i);
        Ok(numbered.into_iter().map(|(_, reply)| reply).collect())
    }
}

/// True if the outcome says the transport's slave is gone.
fn slave_gone(result: &Result<Reply, PatternError>) -> bool {
    let kind = match result {
        Ok(reply) => reply.error().map(|e| e.kind),
        Err(PatternError::Task { error, .. }) => Some(error.kind),
        Err(_) => None,
    };
    matches!(kind, Some(ErrorKind::SlaveExited | ErrorKind::Closed))
}
