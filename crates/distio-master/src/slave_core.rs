//! The state one slave's handle, link tasks and process watcher share: [`SlaveCore`],
//! one struct, its methods in files by job.
//!
//! - `requests`: sending frames, the pending table, answers (the hot path).
//! - `status`: the handshake and the status the handle watches.
//! - `ending`: stopping the slave, refusing requests, settling it when its link ends.
//! - `signals`: the slave's process.
//! - `notices`: events and pings.

use distio_proto::{FrameCodec, SlaveId};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot, watch};

use crate::defaults::Defaults;
use crate::events::Subscriber;
use crate::link::outbox::Outbox;
use crate::location::Location;
use crate::pending::{IdMap, PendingTable};
use crate::remote::RemoteProcess;
use crate::room::Room;

mod ending;
mod notices;
mod requests;
mod signals;
mod status;

pub(crate) use ending::{EXIT_GRACE, Gone, Stop};
pub(crate) use requests::Answered;
pub use status::SlaveState;
pub(crate) use status::Status;

pub(crate) struct SlaveCore {
    pub(crate) id: SlaveId,
    pub(crate) alias: Option<String>,
    pub(crate) group: Mutex<Option<String>>,
    pub(crate) location: Location,
    pub(crate) defaults: Defaults,
    pub(crate) master_defaults: Arc<Defaults>,
    pub(crate) codec: FrameCodec,
    pub(crate) close_grace: Duration,
    pub(crate) shutdown_grace: Duration,
    outbox: Outbox,
    next_request: AtomicU64,
    pending: Mutex<PendingTable>,
    /// Counts requests forgotten in flight (timed out or dropped): a writer that sees it
    /// change looks for their frames to drop them unsent.
    forgotten: AtomicU64,
    /// The byte limit of the frames queued for the slave and not yet written.
    pub(crate) room: Arc<Room>,
    pings: Mutex<IdMap<oneshot::Sender<()>>>,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    stop: Mutex<Option<Stop>>,
    /// True until the slave is stopped or its link ends: the lock-free fast path of
    /// [`refusal`](Self::refusal).
    accepting: AtomicBool,
    pub(crate) status: watch::Sender<Status>,
    subscribers: Mutex<Vec<Subscriber>>,
    /// Tells the reader to give up on the link.
    pub(crate) end_link: Notify,
    has_process: bool,
    /// For a remote slave: its channel on its host's session.
    remote: Option<Arc<RemoteProcess>>,
    /// The master that lists the slave.
    roster: Box<dyn Roster>,
}

/// The master's lists, as a slave's core reaches them.
pub(crate) trait Roster: Send + Sync {
    /// The slave takes no more requests: it leaves the lists and frees its alias at once
    /// (it is kept, unlisted, until it ends). Called once or more.
    fn unlist(&self, id: SlaveId);
    /// The slave has ended: the master lets go of it (unlisting it first if need be).
    fn release(&self, id: SlaveId);
}

pub(crate) struct CoreParts {
    pub(crate) id: SlaveId,
    pub(crate) alias: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) location: Location,
    pub(crate) pid: Option<u32>,
    pub(crate) master_defaults: Arc<Defaults>,
    pub(crate) codec: FrameCodec,
    pub(crate) close_grace: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) outbox: Outbox,
    pub(crate) room: Arc<Room>,
    pub(crate) max_in_flight: usize,
    pub(crate) roster: Box<dyn Roster>,
    pub(crate) remote: Option<Arc<RemoteProcess>>,
}

impl SlaveCore {
    pub(crate) fn new(parts: CoreParts) -> Self {
        let status = Status {
            state: SlaveState::Starting,
            pid: parts.pid,
            tasks: Arc::from(Vec::new()),
            exit: None,
            end: None,
        };
        SlaveCore {
            id: parts.id,
            alias: parts.alias,
            group: Mutex::new(parts.group),
            location: parts.location,
            defaults: Defaults::default(),
            master_defaults: parts.master_defaults,
            codec: parts.codec,
            close_grace: parts.close_grace,
            shutdown_grace: parts.shutdown_grace,
            outbox: parts.outbox,
            next_request: AtomicU64::new(1),
            pending: Mutex::new(PendingTable::new(parts.max_in_flight)),
            forgotten: AtomicU64::new(0),
            room: parts.room,
            pings: Mutex::new(IdMap::default()),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            stop: Mutex::new(None),
            accepting: AtomicBool::new(true),
            status: watch::Sender::new(status),
            subscribers: Mutex::new(Vec::new()),
            end_link: Notify::new(),
            has_process: parts.pid.is_some(),
            remote: parts.remote,
            roster: parts.roster,
        }
    }
}

impl fmt::Display for SlaveCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.alias {
            Some(alias) => write!(f, "Slave #{} (\"{alias}\")", self.id),
            None => write!(f, "Slave #{}", self.id),
        }
    }
}
