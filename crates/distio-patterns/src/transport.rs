//! The request-level trait the patterns are written against, and its implementations.

use async_trait::async_trait;
use distio_master::{MasterError, Slave};
use distio_proto::{Metadata, Payload};
use distio_slave::{SlaveHandle, TaskRegistry};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::{Answer, PatternError, Reply};

/// Something that runs named tasks: a slave process, an in-process registry, or whatever a
/// user plugs in. The patterns only ever talk to this trait.
///
/// Implementations must not panic: every failure is either a [`Reply`] carrying a
/// [`TaskError`](distio_proto::TaskError), or (when the request's catch-all is on, or the
/// transport itself failed) a [`PatternError`].
///
/// ```
/// use distio_patterns::prelude::*;
/// use distio_patterns::{InProcess, Transport};
/// use distio_proto::{Metadata, Payload};
/// use distio_slave::TaskRegistry;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("double", |n: u64, _| async move { Ok(n * 2) })?;
/// let local = InProcess::new(1, tasks);
/// let reply = local.send("double", Payload::encode(&21u64)?, Metadata::new()).await?;
/// assert_eq!(reply.value::<u64>()?, 42);
/// assert_eq!(local.in_flight(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait Transport: Send + Sync {
    /// Identifies the transport in replies; unique among the transports one pattern uses.
    fn id(&self) -> u64;

    /// A name for messages, such as `Slave #3`.
    fn name(&self) -> String;

    /// How many requests are in flight right now (for idle and least-busy choices).
    fn in_flight(&self) -> usize;

    /// Runs `task` on `payload` with `meta`, and waits for the outcome.
    async fn send(
        &self,
        task: &str,
        payload: Payload,
        meta: Metadata,
    ) -> Result<Reply, PatternError>;
}

/// A shared transport, as the patterns hold them.
pub type SharedTransport = Arc<dyn Transport>;

/// Turns anything a pattern accepts as a transport into a [`SharedTransport`], for lists
/// that mix kinds.
///
/// ```
/// use distio_patterns::{InProcess, SharedTransport, Workpool, shared};
/// use distio_slave::TaskRegistry;
///
/// let local = InProcess::new(0, TaskRegistry::new());
/// let mixed: Vec<SharedTransport> = vec![shared(&local), shared(InProcess::new(1, TaskRegistry::new()))];
/// let pool = Workpool::new(mixed)?;
/// assert_eq!(pool.live(), 2);
/// # Ok::<(), distio_patterns::PatternError>(())
/// ```
pub fn shared(transport: impl IntoTransport) -> SharedTransport {
    transport.into_transport()
}

/// What a pattern accepts as one transport: any [`Transport`] by value, or a borrowed
/// handle that is cheap to clone — `&Slave`, `&InProcess`, `&Arc<T>` (so also
/// `&SharedTransport`). A borrowed handle is cloned (a reference-count increment), so the
/// pattern owns what it holds and stays `'static`: it can be cloned into spawned tasks.
///
/// Patterns that take several transports accept any `IntoIterator` of these, so a
/// `&SlaveArray`, a `&[Slave]`, a `&Vec<InProcess>`, `slaves.iter().filter(..)`, a
/// `SlaveArray` or a `Vec` of owned transports all work as they are.
///
/// A transport of your own is accepted by value as it is. To let a borrowed one be passed
/// too, implement this trait for a reference to it (see `docs/transports.md`):
///
/// ```
/// use distio_patterns::{InProcess, IntoTransport, SharedTransport, Workpool, shared};
/// # use async_trait::async_trait;
/// # use distio_patterns::{PatternError, Reply, Transport};
/// # use distio_proto::{Metadata, Payload};
/// use distio_slave::TaskRegistry;
///
/// #[derive(Clone)]
/// struct Mine(InProcess);
/// # #[async_trait]
/// # impl Transport for Mine {
/// #     fn id(&self) -> u64 { self.0.id() }
/// #     fn name(&self) -> String { self.0.name() }
/// #     fn in_flight(&self) -> usize { self.0.in_flight() }
/// #     async fn send(&self, task: &str, payload: Payload, meta: Metadata)
/// #         -> Result<Reply, PatternError> { self.0.send(task, payload, meta).await }
/// # }
///
/// impl IntoTransport for &Mine {
///     fn into_transport(self) -> SharedTransport {
///         shared(self.clone())
///     }
/// }
///
/// let mine: Vec<Mine> = InProcess::many(2, TaskRegistry::new()).into_iter().map(Mine).collect();
/// let borrowed = Workpool::new(&mine)?;
/// let owned = Workpool::new(mine)?;
/// assert_eq!(borrowed.live(), owned.live());
/// # Ok::<(), distio_patterns::PatternError>(())
/// ```
pub trait IntoTransport {
    /// The transport, shared.
    fn into_transport(self) -> SharedTransport;
}

impl<T: Transport + 'static> IntoTransport for T {
    fn into_transport(self) -> SharedTransport {
        Arc::new(self)
    }
}

impl IntoTransport for &Slave {
    fn into_transport(self) -> SharedTransport {
        Arc::new(self.clone())
    }
}

impl IntoTransport for &InProcess {
    fn into_transport(self) -> SharedTransport {
        Arc::new(self.clone())
    }
}

impl<T: Transport + 'static> IntoTransport for &Arc<T> {
    fn into_transport(self) -> SharedTransport {
        Arc::clone(self) as SharedTransport
    }
}

impl IntoTransport for &SharedTransport {
    fn into_transport(self) -> SharedTransport {
        Arc::clone(self)
    }
}

/// The transports of `transports`, shared; `pattern` names the caller in the error when
/// there are none.
pub(crate) fn collect_transports(
    transports: impl IntoIterator<Item: IntoTransport>,
    pattern: &'static str,
) -> Result<Vec<SharedTransport>, PatternError> {
    let transports: Vec<SharedTransport> = transports
        .into_iter()
        .map(IntoTransport::into_transport)
        .collect();
    if transports.is_empty() {
        return Err(PatternError::NoTransports { pattern });
    }
    Ok(transports)
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn id(&self) -> u64 {
        (**self).id()
    }
    fn name(&self) -> String {
        (**self).name()
    }
    fn in_flight(&self) -> usize {
        (**self).in_flight()
    }
    async fn send(
        &self,
        task: &str,
        payload: Payload,
        meta: Metadata,
    ) -> Result<Reply, PatternError> {
        (**self).send(task, payload, meta).await
    }
}

/// A slave of a `distio_master::Master` is a transport: requests go over its link, with
/// its own and its master's timeout and catch-all defaults applied.
#[async_trait]
impl Transport for Slave {
    fn id(&self) -> u64 {
        Slave::id(self)
    }

    fn name(&self) -> String {
        self.to_string()
    }

    fn in_flight(&self) -> usize {
        self.pending()
    }

    async fn send(
        &self,
        task: &str,
        payload: Payload,
        meta: Metadata,
    ) -> Result<Reply, PatternError> {
        match self.exec_payload(task, payload).meta(meta).await {
            Ok(response) => Ok(Reply::from(response)),
            Err(MasterError::Task { task, error, .. }) => Err(PatternError::Task {
                source_name: self.to_string(),
                task,
                error,
            }),
            Err(other) => Err(PatternError::Master(other)),
        }
    }
}

/// Runs tasks in this process, from a `distio_slave::TaskRegistry`, with the semantics of
/// a slave: unknown task, input that does not decode, handler errors and panics become
/// error replies; the request's timeout applies; catch-all turns error replies into
/// `Err`. Each request runs in its own tokio task (so CPU-bound handlers use all worker
/// threads); dropping the waiting future aborts it.
///
/// Cheap to clone: clones share the registry and the in-flight count.
#[derive(Clone, Debug)]
pub struct InProcess {
    tasks: Arc<TaskRegistry>,
    slave: SlaveHandle,
    in_flight: Arc<AtomicUsize>,
}

impl InProcess {
    /// An in-process transport with id `id` running `tasks`.
    pub fn new(id: u64, tasks: TaskRegistry) -> Self {
        InProcess {
            tasks: Arc::new(tasks),
            slave: SlaveHandle::detached(id, format!("in-process #{id}")),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// `count` transports with ids `0..count` sharing one registry.
    pub fn many(count: usize, tasks: TaskRegistry) -> Vec<InProcess> {
        let tasks = Arc::new(tasks);
        (0..count as u64)
            .map(|id| InProcess {
                tasks: Arc::clone(&tasks),
                slave: SlaveHandle::detached(id, format!("in-process #{id}")),
                in_flight: Arc::new(AtomicUsize::new(0)),
            })
            .collect()
    }

    /// The handle task handlers see as their slave.
    pub fn handle(&self) -> &SlaveHandle {
        &self.slave
    }
}

/// Decrements the in-flight count however the request ends.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Aborts a spawned task if the future waiting for it is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl Transport for InProcess {
    fn id(&self) -> u64 {
        self.slave.id()
    }

    fn name(&self) -> String {
        self.slave.alias().to_owned()
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    async fn send(
        &self,
        task: &str,
        payload: Payload,
        meta: Metadata,
    ) -> Result<Reply, PatternError> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _counted = InFlight(Arc::clone(&self.in_flight));
        let catch_all = meta.catch_all.unwrap_or(false);
        let started = Instant::now();
        let run = self.tasks.run(task, payload, meta, &self.slave);
        let mut running = AbortOnDrop(tokio::spawn(run));
        let outcome = match (&mut running.0).await {
            Ok(outcome) => outcome,
            // `run` catches handler panics itself; a join error means the runtime is
            // shutting down.
            Err(join) => Err(distio_proto::TaskError::new(
                distio_proto::ErrorKind::Closed,
                format!("{} stopped before answering: {join}", self.name()),
            )),
        };
        let reply = Reply::new(self.id(), self.name(), task, outcome, started.elapsed());
        match reply.error() {
            Some(error) if catch_all => Err(reply.task_error(error.clone())),
            _ => Ok(reply),
        }
    }
}
