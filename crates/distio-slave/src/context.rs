//! What a task handler knows about its request and its slave.

use distio_proto::{Event, Frame, Metadata, Payload, SlaveId, SlaveIdentity, Throttle};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use crate::SlaveError;

/// Passed to every task handler: the request's metadata and the slave serving it.
///
/// ```
/// use distio_proto::Metadata;
/// use distio_slave::{SlaveHandle, TaskContext};
/// use std::time::Duration;
///
/// let ctx = TaskContext::new(Metadata::new().with_timeout(Duration::from_secs(1)), SlaveHandle::detached(3, "w"));
/// assert_eq!(ctx.meta().timeout, Some(Duration::from_secs(1)));
/// assert_eq!(ctx.slave().id(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct TaskContext {
    meta: Metadata,
    slave: SlaveHandle,
}

impl TaskContext {
    /// A context for a request with `meta` served by `slave`.
    pub fn new(meta: Metadata, slave: SlaveHandle) -> Self {
        TaskContext { meta, slave }
    }

    /// The request's metadata, with the master's defaults applied.
    pub fn meta(&self) -> &Metadata {
        &self.meta
    }

    /// The slave serving the request.
    pub fn slave(&self) -> &SlaveHandle {
        &self.slave
    }
}

/// The running slave, as its tasks see it: identity, pause state, events.
///
/// Cheap to clone; every clone controls the same slave.
///
/// ```
/// use distio_slave::SlaveHandle;
///
/// let slave = SlaveHandle::detached(0, "solo");
/// slave.pause();
/// assert!(slave.is_paused());
/// slave.resume();
/// assert!(!slave.is_paused());
/// assert!(!slave.was_proxied());
/// // A detached slave has no master to send events to.
/// assert!(slave.emit("progress", &0.5).is_err());
/// assert_eq!(slave.dropped_events(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct SlaveHandle(Arc<HandleInner>);

#[derive(Debug)]
struct HandleInner {
    identity: SlaveIdentity,
    paused: AtomicBool,
    /// Events waiting to be written to the master; bounded.
    outbox: Option<Sender<Frame>>,
    /// Events `emit` dropped because the outbox was full.
    dropped: AtomicU64,
}

/// Events dropped because the master is not reading: logged once per interval.
static QUEUE_FULL: Throttle = Throttle::new(Duration::from_secs(10));

impl SlaveHandle {
    /// A handle for a slave with no master connection (for running tasks in-process).
    pub fn detached(id: SlaveId, alias: impl Into<String>) -> Self {
        SlaveHandle::new(SlaveIdentity::local(id, alias), None)
    }

    pub(crate) fn new(identity: SlaveIdentity, outbox: Option<Sender<Frame>>) -> Self {
        SlaveHandle(Arc::new(HandleInner {
            identity,
            paused: AtomicBool::new(false),
            outbox,
            dropped: AtomicU64::new(0),
        }))
    }

    /// The slave's id, as the master that uses it assigned it.
    pub fn id(&self) -> SlaveId {
        self.0.identity.id
    }

    /// The slave's alias.
    pub fn alias(&self) -> &str {
        &self.0.identity.alias
    }

    /// For a slave a server hosts for a remote master: the server's id for it.
    pub fn server_id(&self) -> Option<SlaveId> {
        self.0.identity.server_id
    }

    /// For a slave a server hosts for a remote master: that master's id for it.
    pub fn remote_id(&self) -> Option<SlaveId> {
        self.0.identity.remote_id
    }

    /// True when a server spawned this slave on behalf of a remote master.
    pub fn was_proxied(&self) -> bool {
        self.0.identity.was_proxied()
    }

    /// Everything the master told the slave about itself.
    pub fn identity(&self) -> &SlaveIdentity {
        &self.0.identity
    }

    /// Stops accepting requests: until [`resume`](Self::resume), every request is answered
    /// with a `Paused` error. Requests already running finish normally.
    pub fn pause(&self) {
        self.0.paused.store(true, Ordering::Relaxed);
    }

    /// Accepts requests again after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.0.paused.store(false, Ordering::Relaxed);
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        self.0.paused.load(Ordering::Relaxed)
    }

    /// Sends the master a named event carrying `value`, without waiting.
    ///
    /// The event joins the slave's queue of events waiting to be written to the master
    /// (bounded: [`DEFAULT_EVENT_QUEUE`](crate::DEFAULT_EVENT_QUEUE) unless set with
    /// [`SlaveProcess::event_queue`](crate::SlaveProcess::event_queue)). If a master that
    /// is not reading has let the queue fill up, the event is dropped, counted in
    /// [`dropped_events`](Self::dropped_events), and this returns
    /// [`SlaveError::EventQueueFull`]; use [`emit_wait`](Self::emit_wait) to wait for room
    /// instead. Fails with [`SlaveError::NotConnected`] when there is no master.
    ///
    /// ```
    /// use distio_slave::{SlaveError, TaskContext};
    ///
    /// async fn work(steps: u32, ctx: TaskContext) -> Result<u32, SlaveError> {
    ///     for step in 0..steps {
    ///         // Progress reports may be lost when the master lags; that is fine here.
    ///         match ctx.slave().emit("progress", &step) {
    ///             Ok(()) | Err(SlaveError::EventQueueFull { .. }) => {}
    ///             Err(other) => return Err(other),
    ///         }
    ///     }
    ///     Ok(steps)
    /// }
    /// ```
    pub fn emit<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), SlaveError> {
        let (outbox, frame) = self.event(name, value)?;
        match outbox.try_send(frame) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(_)) => Err(SlaveError::NotConnected(name.to_owned())),
            Err(TrySendError::Full(_)) => {
                let dropped = self.0.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let capacity = outbox.max_capacity();
                if let Some(suppressed) = QUEUE_FULL.allow() {
                    tracing::warn!(
                        event = name,
                        capacity,
                        dropped,
                        "the master is not reading: event dropped, the event queue is full \
                         ({suppressed} more dropped since the last such warning)"
                    );
                }
                Err(SlaveError::EventQueueFull {
                    name: name.to_owned(),
                    capacity,
                })
            }
        }
    }

    /// Sends the master a named event carrying `value`, waiting for room in the event
    /// queue if a master that is not reading has filled it (see [`emit`](Self::emit)).
    ///
    /// Fails with [`SlaveError::NotConnected`] when there is no master, or once the slave
    /// has stopped serving.
    ///
    /// ```
    /// use distio_slave::{TaskContext, TaskFailure};
    ///
    /// async fn work(rows: Vec<String>, ctx: TaskContext) -> Result<usize, TaskFailure> {
    ///     for row in &rows {
    ///         // Every row must reach the master: wait rather than drop.
    ///         ctx.slave().emit_wait("row", row).await?;
    ///     }
    ///     Ok(rows.len())
    /// }
    /// ```
    pub async fn emit_wait<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), SlaveError> {
        let (outbox, frame) = self.event(name, value)?;
        outbox
            .send(frame)
            .await
            .map_err(|_| SlaveError::NotConnected(name.to_owned()))
    }

    /// How many events [`emit`](Self::emit) dropped because the event queue was full.
    ///
    /// ```
    /// use distio_slave::SlaveHandle;
    ///
    /// assert_eq!(SlaveHandle::detached(0, "solo").dropped_events(), 0);
    /// ```
    pub fn dropped_events(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// The outbox and the event frame to put in it.
    fn event<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(&Sender<Frame>, Frame), SlaveError> {
        let outbox =
            (self.0.outbox.as_ref()).ok_or_else(|| SlaveError::NotConnected(name.to_owned()))?;
        let payload = Payload::encode(value)?;
        let event = Event {
            name: name.to_owned(),
            payload,
        };
        Ok((outbox, Frame::Event(event)))
    }
}
