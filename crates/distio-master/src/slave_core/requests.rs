//! Requests: sending their frames, their places in the pending table, their answers, and
//! what the link's writer needs to drop the frames of forgotten ones.

use distio_proto::{Frame, FrameCodec, Payload, RequestId, Response, SlaveId, TaskError, Throttle};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{Gone, SlaveCore};
use crate::end::EndReason;
use crate::link::side::WriterSide;
use crate::link::unix::Flush;
use crate::pending::{Answer, Placed};
use crate::room::Room;
use crate::sync::lock;

/// What became of a request: its outcome, when it came, and, if the master failed it
/// because the slave ended, why.
pub(crate) struct Answered {
    pub(crate) outcome: Result<Payload, TaskError>,
    pub(crate) at: Instant,
    pub(crate) end: Option<EndReason>,
}

impl SlaveCore {
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

    pub(crate) fn pending_count(&self) -> usize {
        lock(&self.pending).pending()
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

pub(super) fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}
