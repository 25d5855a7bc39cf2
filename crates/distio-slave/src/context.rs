//! What a task handler knows about its request and its slave.

use distio_proto::{Event, Frame, Metadata, Payload, SlaveId, SlaveIdentity};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::UnboundedSender;

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
/// ```
#[derive(Clone, Debug)]
pub struct SlaveHandle(Arc<HandleInner>);

#[derive(Debug)]
struct HandleInner {
    identity: SlaveIdentity,
    paused: AtomicBool,
    outbox: Option<UnboundedSender<Frame>>,
}

impl SlaveHandle {
    /// A handle for a slave with no master connection (for running tasks in-process).
    pub fn detached(id: SlaveId, alias: impl Into<String>) -> Self {
        SlaveHandle::new(SlaveIdentity::local(id, alias), None)
    }

    pub(crate) fn new(identity: SlaveIdentity, outbox: Option<UnboundedSender<Frame>>) -> Self {
        SlaveHandle(Arc::new(HandleInner {
            identity,
            paused: AtomicBool::new(false),
            outbox,
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

    /// Sends the master a named event carrying `value`.
    pub fn emit<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), SlaveError> {
        let not_connected = || SlaveError::NotConnected(name.to_owned());
        let outbox = self.0.outbox.as_ref().ok_or_else(not_connected)?;
        let payload = Payload::encode(value)?;
        outbox
            .send(Frame::Event(Event {
                name: name.to_owned(),
                payload,
            }))
            .map_err(|_| not_connected())
    }
}
