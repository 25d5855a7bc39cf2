//! The state one slave's handle, link tasks and process watcher share.

use distio_proto::{
    ErrorKind, Event, Frame, FrameCodec, Payload, Ready, RequestId, Response, SlaveId, TaskError,
    Throttle,
};
use std::fmt;
use std::future::Future;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot, watch};

use crate::defaults::Defaults;
use crate::end::{EndReason, Ended, ProtocolViolation};
use crate::events::{SlaveEvent, Subscriber};
use crate::link::LinkEnd;
use crate::link::outbox::Outbox;
use crate::link::side::WriterSide;
use crate::link::unix::Flush;
use crate::location::Location;
use crate::pending::{Answer, IdMap, PendingTable, Placed};
use crate::room::Room;
use crate::sync::lock;
use crate::{Signal, process};

/// How long a link whose slave process is gone (or whose process is gone while the link
/// stays open) waits for the other half before giving up on it.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Where a slave is in its life.
///
/// ```
/// use distio_master::SlaveState;
/// assert_ne!(SlaveState::Starting, SlaveState::Ready);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaveState {
    /// Started; the handshake has not finished. Requests sent now are queued.
    Starting,
    /// Handshake done; requests flow.
    Ready,
    /// The link is closed and, for a process, the process has exited.
    Ended,
}

/// Why the master stopped taking requests for a slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Closed,
    ShutDown,
    Killed(Signal),
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Closed => "closed",
            Stop::ShutDown => "shut down",
            Stop::Killed(_) => "killed",
        }
    }

    fn reason(self) -> EndReason {
        match self {
            Stop::Closed => EndReason::Closed,
            Stop::ShutDown => EndReason::ShutDown,
            Stop::Killed(signal) => EndReason::Killed(signal),
        }
    }
}

/// A request the master fails itself because the slave is stopped or gone: the error the
/// request resolves with, and why.
#[derive(Clone, Debug)]
pub(crate) struct Gone {
    pub(crate) error: TaskError,
    pub(crate) reason: EndReason,
}

/// What became of a request: its outcome, when it came, and, if the master failed it
/// because the slave ended, why.
pub(crate) struct Answered {
    pub(crate) outcome: Result<Payload, TaskError>,
    pub(crate) at: Instant,
    pub(crate) end: Option<EndReason>,
}

/// What the handle can observe changing.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    pub(crate) state: SlaveState,
    pub(crate) pid: Option<u32>,
    pub(crate) tasks: Arc<[String]>,
    pub(crate) exit: Option<ExitStatus>,
    /// Why the link ended, once it has.
    pub(crate) end: Option<Ended>,
}

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
            roster: parts.roster,
        }
    }

    /// Sends a frame to the slave; frames sent before the handshake is done wait for it.
    /// A failed write ends the link (its pending requests then fail); only a frame that
    /// cannot be encoded is an error here.
    pub(crate) fn send_frame(&self, frame: &Frame) -> Result<(), distio_proto::ProtoError> {
        // Control frames are written at once; what the socket does not take, the writer
        // task writes when it drains.
        self.send_frame_batched(frame, false).map(drop)
    }

    /// [`send_frame`](Self::send_frame); `batch` says more frames are likely to follow soon
    /// (other requests are pending). Returns the flush the caller now owns, if it claimed
    /// one (see [`Flush`]). The frame is borrowed: a Unix link
    /// encodes it on the spot, so the caller keeps its parts; only a channel link, which
    /// hands frames to its writer task, needs its own copy.
    pub(crate) fn send_frame_batched(
        &self,
        frame: &Frame,
        batch: bool,
    ) -> Result<Option<Flush>, distio_proto::ProtoError> {
        match self.outbox.send(frame, batch, self.codec, &self.room) {
            Err(distio_proto::ProtoError::Io(err)) => {
                self.write_failed(err);
                Ok(None)
            }
            sent => sent,
        }
    }

    /// A write to the slave failed: end the link (its pending requests then fail).
    pub(crate) fn write_failed(&self, err: std::io::Error) {
        tracing::debug!(slave = self.id, "writing to slave failed: {err}");
        self.end_link.notify_one();
    }

    pub(crate) fn next_request_id(&self) -> RequestId {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn state(&self) -> SlaveState {
        self.status.borrow().state
    }

    pub(crate) fn pending_count(&self) -> usize {
        lock(&self.pending).pending()
    }

    /// Why a new request is refused, if it is.
    pub(crate) fn refusal(&self) -> Option<Gone> {
        // The common case, without locks: stop() and link_ended() clear the flag first.
        if self.accepting.load(Ordering::Acquire) {
            return None;
        }
        let stop = *lock(&self.stop);
        Some(match stop {
            Some(stop) => Gone {
                error: TaskError::new(
                    ErrorKind::Closed,
                    format!(
                        "{self} has been {}; it takes no more requests",
                        stop.as_str()
                    ),
                ),
                reason: stop.reason(),
            },
            // Not stopped, so the link ended (which records why before clearing the flag).
            None => self.gone(),
        })
    }

    pub(crate) fn is_stopped(&self) -> bool {
        lock(&self.stop).is_some()
    }

    /// Stops taking requests (the first reason given is kept) and leaves the master's
    /// lists.
    pub(crate) fn stop(&self, why: Stop) {
        lock(&self.stop).get_or_insert(why);
        self.accepting.store(false, Ordering::Release);
        self.roster.unlist(self.id);
    }

    /// Why the slave takes no more requests: how its link ended once it has, else why the
    /// master stopped it; `None` while it takes requests.
    pub(crate) fn end_reason(&self) -> Option<EndReason> {
        if let Some(ended) = &self.status.borrow().end {
            return Some(ended.reason.clone());
        }
        lock(&self.stop).map(Stop::reason)
    }

    /// How the link ended (`Disconnected` if asked before it is recorded, which the
    /// callers do not do).
    fn end_record(&self) -> Ended {
        self.status.borrow().end.clone().unwrap_or(Ended {
            reason: EndReason::Disconnected,
            exit: None,
            has_process: self.has_process,
        })
    }

    /// The failure of requests to a slave whose link has ended.
    pub(crate) fn gone(&self) -> Gone {
        let ended = self.end_record();
        Gone {
            error: TaskError::new(ended.kind(), format!("{self} {ended}")),
            reason: ended.reason,
        }
    }

    /// The failure of a request that was pending when the link ended.
    fn gone_before_answering(&self) -> Gone {
        let ended = self.end_record();
        Gone {
            error: TaskError::new(ended.kind(), format!("{self} {ended} before answering")),
            reason: ended.reason,
        }
    }

    /// Gives request `id` a place among the pending ones (or queues it for one), with
    /// `waker` to wake when that changes; fails if the link has ended.
    pub(crate) fn place(&self, id: RequestId, waker: &Waker) -> Result<Placed, Gone> {
        let placed = lock(&self.pending).place(id, waker);
        placed.ok_or_else(|| self.gone())
    }

    /// For a queued request: true once it has its place, false while it waits.
    pub(crate) fn poll_placed(&self, id: RequestId, waker: &Waker) -> Result<bool, Gone> {
        let placed = lock(&self.pending).poll_placed(id, waker);
        placed.ok_or_else(|| self.gone())
    }

    /// The outcome of request `id` once it is there; until then, `cx` is woken when it
    /// arrives. Takes the outcome out: call it until it is ready, not after.
    pub(crate) fn poll_answer(&self, id: RequestId, cx: &mut Context<'_>) -> Poll<Answered> {
        let mut wake = Vec::new();
        let answer = lock(&self.pending).poll_answer(id, cx.waker(), &mut wake);
        wake_all(wake);
        let failed = |gone: Gone, at| Answered {
            outcome: Err(gone.error),
            at,
            end: Some(gone.reason),
        };
        match answer {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Answer::Answered((outcome, at)))) => Poll::Ready(Answered {
                outcome,
                at,
                end: None,
            }),
            Poll::Ready(Some(Answer::LinkEnded(at))) => {
                Poll::Ready(failed(self.gone_before_answering(), at))
            }
            // Never placed or already taken: nothing will come.
            Poll::Ready(None) => Poll::Ready(failed(self.gone(), Instant::now())),
        }
    }

    /// Forgets a request (timed out or abandoned by its caller), placed or queued; its frame,
    /// if still queued for writing, will not be sent.
    pub(crate) fn forget(&self, id: RequestId) {
        let mut wake = Vec::new();
        lock(&self.pending).forget(id, &mut wake);
        self.forgotten.fetch_add(1, Ordering::Release);
        wake_all(wake);
        self.room.forget(id);
    }

    /// Hands the responses in `batch` (emptied) to their requests, with one lock for all,
    /// then wakes the requests. `wakers` is scratch space, left empty.
    pub(crate) fn complete(&self, batch: &mut Vec<Response>, wakers: &mut Vec<Waker>) {
        static OTHER_ID: Throttle = Throttle::new(Duration::from_secs(10));
        self.received
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // One clock read for the batch: these responses arrived together.
        let arrived = Instant::now();
        let mut table = lock(&self.pending);
        let (mut other_id, mut dropped) = (None, 0usize);
        for response in batch.drain(..) {
            if response.slave != self.id {
                other_id = Some(response.slave);
            }
            if !table.answer(response, arrived, wakers) {
                dropped += 1;
            }
        }
        drop(table);
        // Logged after the lock is released: a stalled log sink must not hold requesters up.
        if let Some(claimed) = other_id
            && let Some(suppressed) = OTHER_ID.allow()
        {
            tracing::warn!(
                slave = self.id,
                claimed,
                suppressed,
                "response claims another slave id"
            );
        }
        if dropped > 0 {
            tracing::trace!(
                slave = self.id,
                dropped,
                "late or repeated responses dropped"
            );
        }
        for waker in wakers.drain(..) {
            waker.wake();
        }
    }

    pub(crate) fn accept_ready(&self, ready: Ready) -> Result<(), ProtocolViolation> {
        ready
            .check()
            .map_err(|err| ProtocolViolation::BadHandshake(Arc::new(err)))?;
        let alias = self.alias.as_deref().unwrap_or("");
        if ready.id != self.id || ready.alias != alias {
            return Err(ProtocolViolation::WrongIdentity {
                id: ready.id,
                alias: ready.alias,
            });
        }
        self.status.send_modify(|s| {
            s.state = SlaveState::Ready;
            s.pid.get_or_insert(ready.pid);
            s.tasks = Arc::from(ready.tasks);
        });
        Ok(())
    }

    pub(crate) fn publish(&self, event: Event) {
        let event = SlaveEvent {
            slave: self.id,
            name: event.name,
            payload: event.payload,
        };
        crate::events::publish(&self.subscribers, &event);
    }

    pub(crate) fn subscribe(&self, sub: Subscriber) {
        let mut subscribers = lock(&self.subscribers);
        // Subscriptions dropped since the last event go now, so the list stays bounded.
        subscribers.retain(|sub| !sub.is_closed());
        subscribers.push(sub);
    }

    pub(crate) fn ping_waiter(&self, nonce: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pings).insert(nonce, tx);
        rx
    }

    /// A ping that timed out: its answer is no longer awaited.
    pub(crate) fn forget_ping(&self, nonce: u64) {
        lock(&self.pings).remove(&nonce);
    }

    pub(crate) fn pong(&self, nonce: u64) {
        if let Some(tx) = lock(&self.pings).remove(&nonce) {
            let _ = tx.send(());
        }
    }

    pub(crate) fn record_exit(&self, exit: ExitStatus) {
        self.status.send_modify(|s| s.exit = Some(exit));
    }

    /// Sends `signal` to the slave process, if it has one that has not exited.
    pub(crate) fn signal(&self, signal: Signal) -> std::io::Result<()> {
        let status = self.status.borrow();
        match (status.pid, status.exit) {
            (Some(pid), None) if self.has_process => process::send_signal(pid, signal),
            _ => Ok(()),
        }
    }

    /// Ends the slave without asking: SIGKILL for a process, dropping the link otherwise.
    pub(crate) fn force_end(&self) {
        if self.has_process {
            if let Err(err) = self.signal(Signal::KILL) {
                tracing::warn!(slave = self.id, "could not kill slave process: {err}");
            }
        } else {
            self.end_link.notify_one();
        }
    }

    /// Waits for the handshake to settle: true once the slave is ready, false if it ended
    /// first.
    pub(crate) async fn handshake_done(&self) -> bool {
        let mut status = self.status.subscribe();
        let state = status
            .wait_for(|s| s.state != SlaveState::Starting)
            .await
            .map(|s| s.state)
            .unwrap_or(SlaveState::Ended);
        state == SlaveState::Ready
    }

    /// Waits until the slave has ended.
    pub(crate) async fn ended(&self) {
        let mut rx = self.status.subscribe();
        let _ = rx.wait_for(|s| s.state == SlaveState::Ended).await;
    }

    async fn wait_exit(&self, limit: Duration) -> Option<ExitStatus> {
        let mut rx = self.status.subscribe();
        let waited = tokio::time::timeout(limit, rx.wait_for(|s| s.exit.is_some())).await;
        waited.ok().and_then(|r| r.ok().and_then(|s| s.exit))
    }

    /// The link is gone: take the slave off its master's lists, fail every pending
    /// request, settle the process, mark the slave ended and let the master forget it.
    pub(crate) async fn link_ended(&self, end: LinkEnd) {
        self.roster.unlist(self.id);
        let violation = match end {
            LinkEnd::Violation(violation) => {
                tracing::warn!(slave = self.id, "closing the link to {self}: {violation}");
                self.force_end();
                Some(violation)
            }
            LinkEnd::Closed => None,
        };
        let exit = if self.has_process {
            match self.wait_exit(EXIT_GRACE).await {
                Some(exit) => Some(exit),
                None => {
                    tracing::warn!(
                        slave = self.id,
                        "{self} closed its connection but did not exit; killing it"
                    );
                    self.force_end();
                    self.wait_exit(EXIT_GRACE).await
                }
            }
        } else {
            None
        };
        let stop = *lock(&self.stop);
        let reason = match (violation, exit, stop) {
            (Some(violation), _, _) => EndReason::ProtocolViolation(violation),
            (None, _, Some(stop)) => stop.reason(),
            (None, Some(exit), None) => EndReason::Exited(exit),
            (None, None, None) => EndReason::Disconnected,
        };
        let ended = Ended {
            reason,
            exit,
            has_process: self.has_process,
        };
        tracing::debug!(slave = self.id, "{self} {ended}");
        self.status.send_modify(|s| s.end = Some(ended));
        self.accepting.store(false, Ordering::Release);
        let mut wake = Vec::new();
        lock(&self.pending).close(Instant::now(), &mut wake);
        wake_all(wake);
        self.room.clear();
        lock(&self.pings).clear();
        // The master lets go of it before anyone waiting for the end is told of it.
        self.roster.release(self.id);
        self.status.send_modify(|s| s.state = SlaveState::Ended);
    }
}

impl WriterSide for SlaveCore {
    fn slave_id(&self) -> SlaveId {
        self.id
    }

    fn codec(&self) -> FrameCodec {
        self.codec
    }

    fn room(&self) -> &Room {
        &self.room
    }

    fn handshake_done(&self) -> impl Future<Output = bool> + Send {
        SlaveCore::handshake_done(self)
    }

    /// Counts the requests [`forget`](SlaveCore::forget) has forgotten.
    fn forgotten(&self) -> u64 {
        self.forgotten.load(Ordering::Acquire)
    }

    fn with_live_check<R>(&self, f: impl FnOnce(&dyn Fn(RequestId) -> bool) -> R) -> R {
        let table = lock(&self.pending);
        f(&|id| id == 0 || table.is_waiting(id))
    }

    fn end_link(&self) {
        self.end_link.notify_one();
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
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
