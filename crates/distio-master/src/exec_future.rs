//! The future of one request: sent when first polled, answered through the slave's
//! pending table.

use distio_proto::{ErrorKind, Frame, Payload, Request, RequestId, TaskError};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

use crate::defaults::Effective;
use crate::link::unix::Flush;
use crate::pending::Placed;
use crate::slave_core::{Answered, Gone, SlaveCore};
use crate::{EndReason, Exec, MasterError, Response, Slave};

/// The future of an [`Exec`]: sends the request when first polled (not when it is
/// created), then waits for the response, the request's timeout, or the end of the link,
/// whichever comes first.
///
/// Dropping it before it completes abandons the request: a response that arrives later is
/// discarded.
///
/// ```no_run
/// use distio_master::prelude::*;
/// # async fn demo(slave: distio_master::Slave) -> Result<(), distio_master::MasterError> {
/// use std::future::IntoFuture;
/// let pending: distio_master::ExecFuture = slave.exec("square", &4u64).into_future();
/// assert_eq!(pending.await?.value::<u64>()?, 16);
/// # Ok(()) }
/// ```
#[must_use = "a request is sent when it is polled"]
pub struct ExecFuture {
    state: State,
}

enum State {
    Unsent(Exec),
    /// Waiting for a place among the slave's pending requests, or for room in its outbox
    /// (boxed: the uncommon case, kept out of the future's size).
    Admitting(Box<Admitting>),
    InFlight(InFlight),
    Done,
}

/// A request not yet written: it waits for a place in the pending table (queued behind
/// others) or, placed, for the slave to read enough of its outbox.
struct Admitting {
    slave: Slave,
    /// The request's frame, encoded only once it is admitted.
    frame: Frame,
    id: RequestId,
    started: Instant,
    catch_all: bool,
    timer: Option<(Duration, Pin<Box<Sleep>>)>,
    place: Place,
}

/// Where a request stands in its slave's pending table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Not asked yet.
    None,
    /// Waiting in the queue for a place.
    Queued,
    /// Holds a place.
    Placed,
}

/// A request that has been registered and written (or queued for writing).
struct InFlight {
    slave: Slave,
    task: String,
    id: RequestId,
    started: Instant,
    catch_all: bool,
    /// A flush of a burst this request claimed: finished on its next poll, after the
    /// requests sent meanwhile have queued behind it (one write for all of them); handed to
    /// the writer task if the request goes first.
    flush: Option<Flush>,
    timer: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl ExecFuture {
    pub(crate) fn new(exec: Exec) -> Self {
        ExecFuture {
            state: State::Unsent(exec),
        }
    }
}

impl Future for ExecFuture {
    type Output = Result<Response, MasterError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Done) {
            State::Unsent(exec) => match start(exec, cx) {
                Started::Finished(result) => Poll::Ready(result),
                Started::Waiting(admitting) => {
                    this.state = State::Admitting(admitting);
                    Poll::Pending
                }
                Started::InFlight(flight) => this.sent(flight, cx),
            },
            State::Admitting(mut admitting) => match admitting.poll_admit(cx) {
                Admit::Wait => {
                    this.state = State::Admitting(admitting);
                    Poll::Pending
                }
                Admit::Finished(result) => Poll::Ready(result),
                Admit::Sent(flight) => this.sent(flight, cx),
            },
            State::InFlight(mut flight) => match flight.poll_outcome(cx) {
                Poll::Ready(answered) => Poll::Ready(flight.finish(answered)),
                Poll::Pending => {
                    this.state = State::InFlight(flight);
                    Poll::Pending
                }
            },
            State::Done => panic!("ExecFuture polled after it completed"),
        }
    }
}

impl ExecFuture {
    /// The request was just written (or queued for writing): from now on it waits for its
    /// answer, its timeout, or the end of the link.
    fn sent(
        &mut self,
        mut flight: InFlight,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response, MasterError>> {
        // The timer must see this poll's waker, or a request whose slave never answers
        // would wait for something else to wake it.
        if let Some((limit, sleep)) = &mut flight.timer
            && sleep.as_mut().poll(cx).is_ready()
        {
            let limit = *limit;
            flight.slave.core().forget(flight.id);
            let error = flight.timed_out(limit);
            return Poll::Ready(flight.finish(Answered {
                outcome: Err(error),
                at: Instant::now(),
                end: None,
            }));
        }
        if flight.flush.is_some() {
            // Yield once so the requests this task sends meanwhile queue behind this one.
            cx.waker().wake_by_ref();
        }
        self.state = State::InFlight(flight);
        Poll::Pending
    }
}

impl Drop for ExecFuture {
    fn drop(&mut self) {
        match &mut self.state {
            // Abandoned in flight: forget the entry (a claimed flush goes to the writer task
            // as its token drops).
            State::InFlight(flight) => flight.slave.core().forget(flight.id),
            // Abandoned before it was written: give up its place (or its turn).
            State::Admitting(admitting) => admitting.slave.core().forget(admitting.id),
            State::Unsent(_) | State::Done => {}
        }
    }
}

impl std::fmt::Debug for ExecFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Unsent(_) => "unsent",
            State::Admitting(_) => "waiting to be sent",
            State::InFlight(_) => "in flight",
            State::Done => "done",
        };
        f.debug_struct("ExecFuture").field("state", &state).finish()
    }
}

impl InFlight {
    /// The outcome and when it came, once it has.
    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Answered> {
        let core = self.slave.core();
        if let Some(flush) = self.flush.take()
            && let Err(err) = flush.finish()
        {
            core.write_failed(err);
        }
        if let Poll::Ready(mut answered) = core.poll_answer(self.id, cx) {
            // The slave enforces the same limit and may report it first: same error.
            if let (Err(error), Some((limit, _))) = (&answered.outcome, &self.timer)
                && error.kind == ErrorKind::TimedOut
            {
                answered.outcome = Err(timed_out(&self.slave, self.id, &self.task, *limit));
            }
            return Poll::Ready(answered);
        }
        if let Some((limit, sleep)) = &mut self.timer
            && sleep.as_mut().poll(cx).is_ready()
        {
            let limit = *limit;
            // Forget the entry now: a late answer finds nothing.
            core.forget(self.id);
            return Poll::Ready(Answered {
                outcome: Err(self.timed_out(limit)),
                at: Instant::now(),
                end: None,
            });
        }
        Poll::Pending
    }

    fn timed_out(&self, limit: Duration) -> TaskError {
        timed_out(&self.slave, self.id, &self.task, limit)
    }

    /// The response for what became of the request.
    fn finish(mut self, answered: Answered) -> Result<Response, MasterError> {
        // A flush this request claimed is not lost with it: its token hands it over.
        drop(self.flush.take());
        finish(
            self.slave,
            self.id,
            self.task,
            (answered.outcome, answered.end),
            self.started..answered.at,
            self.catch_all,
        )
    }
}

fn timed_out(slave: &Slave, id: RequestId, task: &str, limit: Duration) -> TaskError {
    TaskError::new(
        ErrorKind::TimedOut,
        format!(
            "request {id} (task \"{task}\") to {} timed out after {limit:?}",
            slave.core()
        ),
    )
}

/// What the first poll of a request led to.
enum Started {
    Finished(Result<Response, MasterError>),
    Waiting(Box<Admitting>),
    InFlight(InFlight),
}

/// What a try at writing a waiting request led to.
enum Admit {
    Wait,
    Finished(Result<Response, MasterError>),
    Sent(InFlight),
}

/// Checks the request and tries to write it (the first poll of an [`ExecFuture`]).
fn start(exec: Exec, cx: &Context<'_>) -> Started {
    let Exec {
        slave,
        task,
        payload,
        mut meta,
        timeout,
    } = exec;
    let payload = match payload {
        Ok(payload) => payload,
        Err(err) => return Started::Finished(Err(err)),
    };
    let core = slave.core();
    let effective = Effective::resolve(timeout, &meta, &core.defaults, &core.master_defaults);
    let started = Instant::now();
    let id = core.next_request_id();
    if let Some(refusal) = core.refusal() {
        return Started::Finished(finish(
            slave,
            id,
            task,
            (Err(refusal.error), Some(refusal.reason)),
            started..started,
            effective.catch_all,
        ));
    }
    if effective.timeout == Some(Duration::ZERO) {
        // A zero timeout: timed out before it could be sent.
        let error = timed_out(&slave, id, &task, Duration::ZERO);
        return Started::Finished(finish(
            slave,
            id,
            task,
            (Err(error), None),
            started..started,
            effective.catch_all,
        ));
    }
    effective.apply(&mut meta);
    let frame = Frame::Request(Request {
        id,
        task,
        payload,
        meta,
    });
    if let Err(err) = check_size(core, &frame) {
        return Started::Finished(Err(err));
    }
    // Boxed: most requests have no timeout, and an inline timer would make every request's
    // future several times larger.
    let timer = effective
        .timeout
        .map(|limit| (limit, Box::pin(tokio::time::sleep(limit))));
    let mut admitting = Admitting {
        slave,
        frame,
        id,
        started,
        catch_all: effective.catch_all,
        timer,
        place: Place::None,
    };
    match admitting.try_send(cx) {
        Admit::Wait => {
            let mut admitting = Box::new(admitting);
            // Its timer runs while it waits: let it know this poll's waker.
            match admitting.poll_timer(cx) {
                Some(result) => Started::Finished(result),
                None => Started::Waiting(admitting),
            }
        }
        Admit::Finished(result) => Started::Finished(result),
        Admit::Sent(flight) => Started::InFlight(flight),
    }
}

impl Admitting {
    /// Polls a waiting request: its timeout, the slave's state, then another try.
    fn poll_admit(&mut self, cx: &Context<'_>) -> Admit {
        if let Some(result) = self.poll_timer(cx) {
            return Admit::Finished(result);
        }
        let core = self.slave.core();
        if let Some(refusal) = core.refusal() {
            core.forget(self.id);
            return Admit::Finished(self.fail(refusal.error, Some(refusal.reason)));
        }
        self.try_send(cx)
    }

    /// `Some` once the request's timeout has fired (it is then forgotten).
    fn poll_timer(&mut self, cx: &Context<'_>) -> Option<Result<Response, MasterError>> {
        let mut cx = Context::from_waker(cx.waker());
        let (limit, sleep) = self.timer.as_mut()?;
        if sleep.as_mut().poll(&mut cx).is_pending() {
            return None;
        }
        let limit = *limit;
        self.slave.core().forget(self.id);
        let task = &request_ref(&self.frame).task;
        let error = timed_out(&self.slave, self.id, task, limit);
        Some(self.fail(error, None))
    }

    /// Ends the request unsent with `error` (the master's own: `end` says why, if the
    /// slave is stopped or gone).
    fn fail(&mut self, error: TaskError, end: Option<EndReason>) -> Result<Response, MasterError> {
        let task = std::mem::take(&mut request_mut(&mut self.frame).task);
        let now = Instant::now();
        finish(
            self.slave.clone(),
            self.id,
            task,
            (Err(error), end),
            self.started..now,
            self.catch_all,
        )
    }

    /// Ends the request unsent: the slave is stopped or gone.
    fn fail_gone(&mut self, gone: Gone) -> Result<Response, MasterError> {
        self.fail(gone.error, Some(gone.reason))
    }

    /// Takes a place in the pending table (or the turn it was given), waits for room in
    /// the outbox if it is full, then writes the request.
    fn try_send(&mut self, cx: &Context<'_>) -> Admit {
        let core = Arc::clone(self.slave.core());
        let waker = cx.waker();
        // Alone, the request is written at once. With others in flight it is part of a
        // burst: the first sender to find the link idle yields once, so the requests its
        // task sends meanwhile queue behind it, then writes them all with one system call.
        let mut batch = true;
        match self.place {
            Place::None => match core.place(self.id, waker) {
                Ok(Placed::Now(pending)) => {
                    batch = pending > 1;
                    self.place = Place::Placed;
                }
                Ok(Placed::Queued) => {
                    self.place = Place::Queued;
                    return Admit::Wait;
                }
                Err(gone) => return Admit::Finished(self.fail_gone(gone)),
            },
            Place::Queued => match core.poll_placed(self.id, waker) {
                Ok(true) => self.place = Place::Placed,
                Ok(false) => return Admit::Wait,
                Err(gone) => return Admit::Finished(self.fail_gone(gone)),
            },
            Place::Placed => {}
        }
        if !core.room.admit(self.id, waker) {
            // Placed and waiting for room: the link may end meanwhile.
            let mut cx = Context::from_waker(waker);
            if let Poll::Ready(answered) = core.poll_answer(self.id, &mut cx) {
                return Admit::Finished(match answered.outcome {
                    Err(error) => self.fail(error, answered.end),
                    Ok(_) => self.fail_gone(core.gone()),
                });
            }
            return Admit::Wait;
        }
        let flush = match core.send_frame_batched(&self.frame, batch) {
            Ok(flush) => flush,
            Err(err) => {
                // The frame could not be encoded: the request's own fault, not the link's.
                core.forget(self.id);
                return Admit::Finished(Err(MasterError::Encode(err)));
            }
        };
        core.sent.fetch_add(1, Ordering::Relaxed);
        // The frame was only borrowed: its task name moves on into the response.
        let task = std::mem::take(&mut request_mut(&mut self.frame).task);
        Admit::Sent(InFlight {
            slave: self.slave.clone(),
            task,
            id: self.id,
            started: self.started,
            catch_all: self.catch_all,
            flush,
            timer: self.timer.take(),
        })
    }
}

/// The response for an outcome (and, for a request the master failed because the slave is
/// stopped or gone, why) over `timing` (sent..answered); with catch-all an error outcome
/// becomes `Err`.
fn finish(
    slave: Slave,
    id: RequestId,
    task: String,
    (outcome, end): (Result<Payload, TaskError>, Option<EndReason>),
    timing: Range<Instant>,
    catch_all: bool,
) -> Result<Response, MasterError> {
    match outcome {
        Err(error) if catch_all => Err(MasterError::Task {
            slave: slave.id(),
            task,
            error,
            end,
        }),
        outcome => Ok(Response {
            slave,
            request_id: id,
            task,
            outcome,
            end,
            started: timing.start,
            duration: timing.end.saturating_duration_since(timing.start),
        }),
    }
}

/// The request in a frame [`start`] built as one.
fn request_ref(frame: &Frame) -> &Request {
    match frame {
        Frame::Request(request) => request,
        _ => unreachable!("start only builds request frames"),
    }
}

/// [`request_ref`], mutably.
fn request_mut(frame: &mut Frame) -> &mut Request {
    match frame {
        Frame::Request(request) => request,
        _ => unreachable!("start only builds request frames"),
    }
}

/// Refuses a request too large for one frame before it is queued (measuring a request
/// is arithmetic on its lengths; nothing is walked or copied).
fn check_size(core: &SlaveCore, frame: &Frame) -> Result<(), MasterError> {
    core.codec
        .encoded_len(frame)
        .map(drop)
        .map_err(|source| MasterError::TooLarge {
            task: request_ref(frame).task.clone(),
            source,
        })
}
