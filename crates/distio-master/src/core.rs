//! The state one slave's handle, link tasks and process watcher share.

use distio_proto::{
    ErrorKind, Event, Frame, FrameCodec, Payload, Ready, RequestId, Response, SlaveId, TaskError,
};
use std::collections::HashMap;
use std::fmt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Notify, oneshot, watch};

use crate::defaults::Defaults;
use crate::direct::{DirectWriter, Sent};
use crate::events::{SlaveEvent, Subscriber};
use crate::{Location, Signal, process};

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
    Killed,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Closed => "closed",
            Stop::ShutDown => "shut down",
            Stop::Killed => "killed",
        }
    }
}

/// What the handle can observe changing.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    pub(crate) state: SlaveState,
    pub(crate) pid: Option<u32>,
    pub(crate) tasks: Arc<[String]>,
    pub(crate) exit: Option<ExitStatus>,
    /// Why the link ended, once it has: the error kind pending requests get, and the reason.
    pub(crate) end: Option<(ErrorKind, String)>,
}

/// Hashes request ids as themselves: they are sequential, so they spread well already and
/// SipHash would only cost time on every request.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for ids; fold anything else in case that changes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

type IdMap<V> = HashMap<RequestId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Requests waiting for a response, and whether the link can still answer them.
pub(crate) struct PendingTable {
    open: bool,
    /// Entries not yet answered (the rest hold an outcome their future has not collected).
    unanswered: usize,
    slots: IdMap<Slot>,
}

/// Where a request's outcome meets its future.
enum Slot {
    /// Not answered yet; the waker of the future's last poll.
    Waiting(Option<Waker>),
    /// Answered (or failed with the link), and when; the future takes it on its next poll.
    Done(Result<Payload, TaskError>, Instant),
}

/// How frames reach the slave.
pub(crate) enum Outbox {
    /// Through a channel to the link's writer task (any kind of link).
    Channel(UnboundedSender<Frame>),
    /// Written by the sender itself (Unix-socket links).
    Direct(Arc<DirectWriter>),
}

/// Why a link ended.
pub(crate) enum LinkEnd {
    /// The connection closed (or was told to close).
    Closed,
    /// The slave broke the protocol.
    Violation(String),
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
    outbox: Outbox,
    next_request: AtomicU64,
    pending: Mutex<PendingTable>,
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
    on_end: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (every critical
/// section here leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    pub(crate) outbox: Outbox,
    pub(crate) on_end: Box<dyn FnOnce() + Send>,
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
            outbox: parts.outbox,
            next_request: AtomicU64::new(1),
            pending: Mutex::new(PendingTable {
                open: true,
                unanswered: 0,
                slots: IdMap::default(),
            }),
            pings: Mutex::new(IdMap::default()),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            stop: Mutex::new(None),
            accepting: AtomicBool::new(true),
            status: watch::Sender::new(status),
            subscribers: Mutex::new(Vec::new()),
            end_link: Notify::new(),
            has_process: parts.pid.is_some(),
            on_end: Mutex::new(Some(parts.on_end)),
        }
    }

    /// Sends a frame to the slave; frames sent before the handshake is done wait for it.
    /// A failed write ends the link (its pending requests then fail); only a frame that
    /// cannot be encoded is an error here.
    pub(crate) fn send_frame(&self, frame: &Frame) -> Result<(), distio_proto::ProtoError> {
        // Control frames do not wait for the socket to drain: the writer task does.
        if let Some((writer, _)) = self.send_frame_batched(frame, false)? {
            writer.hand_over();
        }
        Ok(())
    }

    /// [`send_frame`](Self::send_frame); `batch` says more frames are likely to follow soon
    /// (other requests are pending). Returns the writer when the caller now owns a flush
    /// it must finish (see [`DirectWriter::send`]). The frame is borrowed: a Unix link
    /// encodes it on the spot, so the caller keeps its parts; only a channel link, which
    /// hands frames to its writer task, needs its own copy.
    pub(crate) fn send_frame_batched(
        &self,
        frame: &Frame,
        batch: bool,
    ) -> Result<Option<(&Arc<DirectWriter>, bool)>, distio_proto::ProtoError> {
        match &self.outbox {
            Outbox::Channel(tx) => {
                let _ = tx.send(frame.clone());
                Ok(None)
            }
            Outbox::Direct(writer) => match writer.send(frame, !batch) {
                Ok(Sent::Queued) => Ok(None),
                Ok(Sent::Claimed) => Ok(Some((writer, true))),
                Ok(Sent::Full) => Ok(Some((writer, false))),
                Err(distio_proto::ProtoError::Io(err)) => {
                    self.write_failed(err);
                    Ok(None)
                }
                Err(other) => Err(other),
            },
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
        lock(&self.pending).unanswered
    }

    /// Why a new request is refused, if it is.
    pub(crate) fn refusal(&self) -> Option<TaskError> {
        // The common case, without locks: stop() and link_ended() clear the flag first.
        if self.accepting.load(Ordering::Acquire) {
            return None;
        }
        let stop = *lock(&self.stop);
        Some(match stop {
            Some(stop) => TaskError::new(
                ErrorKind::Closed,
                format!(
                    "{self} has been {}; it takes no more requests",
                    stop.as_str()
                ),
            ),
            // Not stopped, so the link ended (which records why before clearing the flag).
            None => self.gone_error(),
        })
    }

    pub(crate) fn is_stopped(&self) -> bool {
        lock(&self.stop).is_some()
    }

    /// Stops taking requests; the first reason given is kept.
    pub(crate) fn stop(&self, why: Stop) {
        lock(&self.stop).get_or_insert(why);
        self.accepting.store(false, Ordering::Release);
    }

    /// The error for requests to a slave whose link has ended.
    pub(crate) fn gone_error(&self) -> TaskError {
        let (kind, reason) = self
            .status
            .borrow()
            .end
            .clone()
            .unwrap_or_else(|| (ErrorKind::Closed, "closed its connection".to_owned()));
        TaskError::new(kind, format!("{self} {reason}"))
    }

    /// Registers a pending request whose future `waker` wakes, unless the link has ended.
    /// Returns how many requests are unanswered now, this one included.
    pub(crate) fn register(&self, id: RequestId, waker: &Waker) -> Result<usize, TaskError> {
        let mut table = lock(&self.pending);
        if !table.open {
            drop(table);
            return Err(self.gone_error());
        }
        table.slots.insert(id, Slot::Waiting(Some(waker.clone())));
        table.unanswered += 1;
        Ok(table.unanswered)
    }

    /// The outcome of request `id` once it is there; until then, `cx` is woken when it
    /// arrives. Takes the outcome out: call it until it is ready, not after.
    pub(crate) fn poll_answer(
        &self,
        id: RequestId,
        cx: &mut Context<'_>,
    ) -> Poll<(Result<Payload, TaskError>, Instant)> {
        let mut table = lock(&self.pending);
        match table.slots.get_mut(&id) {
            Some(Slot::Waiting(waker)) => {
                match waker {
                    Some(known) if known.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(Slot::Done(..)) => match table.slots.remove(&id) {
                Some(Slot::Done(outcome, at)) => Poll::Ready((outcome, at)),
                _ => Poll::Pending,
            },
            // Never registered or already taken: nothing will come.
            None => {
                drop(table);
                Poll::Ready((Err(self.gone_error()), Instant::now()))
            }
        }
    }

    /// Forgets a pending request (timed out or abandoned by its caller).
    pub(crate) fn forget(&self, id: RequestId) {
        let mut table = lock(&self.pending);
        if let Some(Slot::Waiting(_)) = table.slots.remove(&id) {
            table.unanswered -= 1;
        }
    }

    /// Hands the responses in `batch` (emptied) to their requests, with one lock for all,
    /// then wakes the requests. `wakers` is scratch space, left empty.
    pub(crate) fn complete(&self, batch: &mut Vec<Response>, wakers: &mut Vec<Waker>) {
        self.received
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // One clock read for the batch: these responses arrived together.
        let arrived = Instant::now();
        let mut table = lock(&self.pending);
        for response in batch.drain(..) {
            if response.slave != self.id {
                tracing::warn!(
                    slave = self.id,
                    claimed = response.slave,
                    "response claims another slave id"
                );
            }
            let request = response.request;
            match table.slots.get_mut(&request) {
                Some(slot @ Slot::Waiting(_)) => {
                    if let Slot::Waiting(waker) =
                        std::mem::replace(slot, Slot::Done(response.outcome, arrived))
                    {
                        table.unanswered -= 1;
                        wakers.extend(waker);
                    }
                }
                Some(Slot::Done(..)) | None => tracing::trace!(
                    slave = self.id,
                    request,
                    "late or repeated response dropped"
                ),
            }
        }
        drop(table);
        for waker in wakers.drain(..) {
            waker.wake();
        }
    }

    pub(crate) fn accept_ready(&self, ready: Ready) -> Result<(), String> {
        ready.check().map_err(|err| err.to_string())?;
        let alias = self.alias.as_deref().unwrap_or("");
        if ready.id != self.id || ready.alias != alias {
            return Err(format!(
                "it answered as slave #{} (\"{}\") instead of #{} (\"{alias}\")",
                ready.id, ready.alias, self.id
            ));
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
        lock(&self.subscribers).retain(|sub| sub.offer(&event));
    }

    pub(crate) fn subscribe(&self, sub: Subscriber) {
        lock(&self.subscribers).push(sub);
    }

    pub(crate) fn ping_waiter(&self, nonce: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pings).insert(nonce, tx);
        rx
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

    /// The link is gone: fail every pending request, settle the process, mark the slave
    /// ended and take it off its master's list.
    pub(crate) async fn link_ended(&self, end: LinkEnd) {
        let violation = match end {
            LinkEnd::Violation(reason) => {
                tracing::warn!(slave = self.id, "closing the link to {self}: {reason}");
                self.force_end();
                Some(reason)
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
        let end = match (violation, exit, stop) {
            (Some(reason), _, _) => (
                ErrorKind::Closed,
                format!("broke the protocol ({reason}); its connection was closed"),
            ),
            (None, _, Some(Stop::Closed)) => (ErrorKind::Closed, "was closed".to_owned()),
            (None, Some(exit), _) => (
                ErrorKind::SlaveExited,
                format!("exited ({})", describe_exit(exit)),
            ),
            (None, None, _) if self.has_process => (
                ErrorKind::Closed,
                "closed its connection and did not exit".to_owned(),
            ),
            (None, None, _) => (ErrorKind::Closed, "closed its connection".to_owned()),
        };
        self.status.send_modify(|s| s.end = Some(end));
        self.accepting.store(false, Ordering::Release);
        let error = self.gone_error();
        let error = TaskError::new(error.kind, format!("{} before answering", error.message));
        let now = Instant::now();
        let wakers: Vec<Waker> = {
            let mut table = lock(&self.pending);
            table.open = false;
            table.unanswered = 0;
            table
                .slots
                .values_mut()
                .filter_map(|slot| match slot {
                    Slot::Waiting(waker) => {
                        let waker = waker.take();
                        *slot = Slot::Done(Err(error.clone()), now);
                        waker
                    }
                    Slot::Done(..) => None,
                })
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
        lock(&self.pings).clear();
        tracing::debug!(slave = self.id, "{error}");
        // Off the master's list before anyone waiting for the end is told of it.
        let on_end = lock(&self.on_end).take();
        if let Some(on_end) = on_end {
            on_end();
        }
        self.status.send_modify(|s| s.state = SlaveState::Ended);
    }
}

/// "code 3" or "signal 9 (SIGKILL)".
pub(crate) fn describe_exit(exit: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("code {code}"),
        (None, Some(sig)) => format!(
            "signal {sig}{}",
            Signal(sig)
                .name()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        (None, None) => exit.to_string(),
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
