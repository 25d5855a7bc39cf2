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

use crate::core::SlaveCore;
use crate::defaults::Effective;
use crate::direct::DirectWriter;
use crate::{Exec, MasterError, Response, Slave};

/// The future of an [`Exec`]: sends the request when first polled, then waits for the
/// response, the request's timeout, or the end of the link, whichever comes first.
///
/// Dropping it before it completes abandons the request: a response that arrives later is
/// discarded.
///
/// ```no_run
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
    InFlight(InFlight),
    Done,
}

/// A request that has been registered and written (or queued for writing).
struct InFlight {
    slave: Slave,
    task: String,
    id: RequestId,
    started: Instant,
    catch_all: bool,
    /// A flush of a burst this request claimed: finished on its next poll, after the
    /// requests sent meanwhile have queued behind it (one write for all of them).
    flush: Option<Arc<DirectWriter>>,
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
        if let State::Unsent(_) = this.state {
            let State::Unsent(exec) = std::mem::replace(&mut this.state, State::Done) else {
                unreachable!("matched just above")
            };
            match start(exec, cx) {
                Started::Finished(result) => return Poll::Ready(result),
                Started::InFlight(flight) => {
                    let yield_once = flight.flush.is_some();
                    this.state = State::InFlight(flight);
                    if yield_once {
                        cx.waker().wake_by_ref();
                    }
                    // Registered with this poll's waker: nothing to check until it wakes.
                    return Poll::Pending;
                }
            }
        }
        let State::InFlight(flight) = &mut this.state else {
            panic!("ExecFuture polled after it completed")
        };
        let (outcome, answered) = match flight.poll_outcome(cx) {
            Poll::Ready(answer) => answer,
            Poll::Pending => return Poll::Pending,
        };
        let State::InFlight(flight) = std::mem::replace(&mut this.state, State::Done) else {
            unreachable!("matched just above")
        };
        Poll::Ready(finish(
            flight.slave,
            flight.id,
            flight.task,
            outcome,
            flight.started..answered,
            flight.catch_all,
        ))
    }
}

impl Drop for ExecFuture {
    fn drop(&mut self) {
        // Abandoned in flight: forget the entry, and hand a claimed flush to the writer.
        if let State::InFlight(flight) = &mut self.state {
            flight.slave.core().forget(flight.id);
            if let Some(writer) = flight.flush.take() {
                writer.hand_over();
            }
        }
    }
}

impl std::fmt::Debug for ExecFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Unsent(_) => "unsent",
            State::InFlight(_) => "in flight",
            State::Done => "done",
        };
        f.debug_struct("ExecFuture").field("state", &state).finish()
    }
}

impl InFlight {
    /// The outcome and when it came, once it has.
    fn poll_outcome(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<(Result<Payload, TaskError>, Instant)> {
        let core = self.slave.core();
        if let Some(writer) = self.flush.take()
            && let Err(err) = writer.finish_now()
        {
            core.write_failed(err);
        }
        if let Poll::Ready((outcome, at)) = core.poll_answer(self.id, cx) {
            let outcome = match (outcome, &self.timer) {
                // The slave enforces the same limit and may report it first: same error.
                (Err(error), Some((limit, _))) if error.kind == ErrorKind::TimedOut => {
                    Err(self.timed_out(*limit))
                }
                (outcome, _) => outcome,
            };
            return Poll::Ready((outcome, at));
        }
        if let Some((limit, sleep)) = &mut self.timer
            && sleep.as_mut().poll(cx).is_ready()
        {
            let limit = *limit;
            // Forget the entry now: a late answer finds nothing.
            core.forget(self.id);
            return Poll::Ready((Err(self.timed_out(limit)), Instant::now()));
        }
        Poll::Pending
    }

    fn timed_out(&self, limit: Duration) -> TaskError {
        TaskError::new(
            ErrorKind::TimedOut,
            format!(
                "request {} (task \"{}\") to {} timed out after {limit:?}",
                self.id,
                self.task,
                self.slave.core()
            ),
        )
    }
}

/// What the first poll of a request led to.
enum Started {
    Finished(Result<Response, MasterError>),
    InFlight(InFlight),
}

/// Registers and writes the request (the first poll of an [`ExecFuture`]).
fn start(exec: Exec, cx: &Context<'_>) -> Started {
    let Exec {
        slave,
        task,
        payload,
        mut meta,
    } = exec;
    let payload = match payload {
        Ok(payload) => payload,
        Err(err) => return Started::Finished(Err(err)),
    };
    let core = slave.core();
    let effective = Effective::resolve(&meta, &core.defaults, &core.master_defaults);
    let started = Instant::now();
    let id = core.next_request_id();
    let refused = |slave: Slave, task, error| {
        Started::Finished(finish(
            slave,
            id,
            task,
            Err(error),
            started..started,
            effective.catch_all,
        ))
    };
    if let Some(refusal) = core.refusal() {
        return refused(slave, task, refusal);
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
    let pending = match core.register(id, cx.waker()) {
        Ok(pending) => pending,
        Err(gone) => return refused(slave, request_of(frame).task, gone),
    };
    // Alone, the request is written at once. With others in flight it is part of a burst:
    // the first sender to find the link idle yields once, so the requests its task sends
    // meanwhile queue behind it, then writes them all with one system call.
    let sent = core.send_frame_batched(&frame, pending > 1);
    // The frame was only borrowed: its task name moves on into the response.
    let task = request_of(frame).task;
    let flush = match sent {
        Ok(None) => None,
        Ok(Some((writer, true))) => Some(Arc::clone(writer)),
        // The socket is full: the link's writer task finishes the write when it drains.
        Ok(Some((writer, false))) => {
            writer.hand_over();
            None
        }
        Err(err) => {
            core.forget(id);
            let error = TaskError::new(
                ErrorKind::Closed,
                format!("request {id} (task \"{task}\") could not be sent: {err}"),
            );
            return refused(slave, task, error);
        }
    };
    core.sent.fetch_add(1, Ordering::Relaxed);
    // Boxed: most requests have no timeout, and an inline timer would make every request's
    // future several times larger.
    let timer = effective
        .timeout
        .map(|limit| (limit, Box::pin(tokio::time::sleep(limit))));
    Started::InFlight(InFlight {
        slave,
        task,
        id,
        started,
        catch_all: effective.catch_all,
        flush,
        timer,
    })
}

/// The response for an outcome over `timing` (sent..answered); with catch-all an error
/// outcome becomes `Err`.
fn finish(
    slave: Slave,
    id: RequestId,
    task: String,
    outcome: Result<Payload, TaskError>,
    timing: Range<Instant>,
    catch_all: bool,
) -> Result<Response, MasterError> {
    match outcome {
        Err(error) if catch_all => Err(MasterError::Task {
            slave: slave.id(),
            task,
            error,
        }),
        outcome => Ok(Response {
            slave,
            request_id: id,
            task,
            outcome,
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

/// [`request_ref`], by value.
fn request_of(frame: Frame) -> Request {
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
