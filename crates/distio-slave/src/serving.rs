//! The request loop: reading frames, running handlers, writing what they produce.

use distio_proto::{
    Control, ErrorKind, Frame, FrameCodec, Payload, ProtoError, RequestId, Response, SlaveId,
    TaskError, Throttle,
};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::Receiver;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::limits::WARN_INTERVAL;
use crate::outgoing::feed;
use crate::{SlaveHandle, TaskRegistry, TaskRun};

/// Frames a master should not send, ignored.
static STRAY_FRAME: Throttle = Throttle::new(WARN_INTERVAL);

/// Why the request loop ended.
pub(crate) enum End {
    /// The master asked to close (directly, or after a drain).
    Close,
    /// The master's end of the connection closed.
    MasterGone,
    /// The master sent something that is not a valid frame, or reading or writing failed.
    Broken(ProtoError),
}

impl End {
    fn from_error(err: ProtoError) -> End {
        match err {
            ProtoError::Io(ref io) if is_disconnect(io) => End::MasterGone,
            other => End::Broken(other),
        }
    }
}

/// The serving loop, on one task: reads requests, runs their handlers concurrently, and
/// writes responses and events as they are ready. Frames produced together go out with
/// one flush, made only when nothing else is ready.
///
/// A handler is polled once as soon as its request is read: most finish right there, and
/// their response is queued without the handler ever joining the set of running ones.
/// That set holds at most `max_running`; while it is full the connection is not read, so
/// the master is held back by the socket, and the rest of the loop goes on.
pub(crate) async fn serve_requests<R, W>(
    frames: &mut FramedRead<R, FrameCodec>,
    sink: &mut FramedWrite<W, FrameCodec>,
    outbox: &mut Receiver<Frame>,
    mut serving: Serving<'_>,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut running = FuturesUnordered::new();
    let mut unflushed = false;
    loop {
        let out = tokio::select! {
            biased;
            Some(response) = running.next(), if !running.is_empty() => Some(response),
            Some(frame) = outbox.recv() => Some(frame),
            frame = frames.next(), if running.len() < serving.max_running => {
                // This frame, then (up to a bound, so running handlers and events get
                // their turn) those already read behind it, without going round the loop.
                let mut next = Some(frame);
                let mut taken = 0;
                while let Some(frame) = next {
                    let frame = match frame {
                        None => return End::MasterGone,
                        Some(Err(err)) => return End::from_error(err),
                        Some(Ok(frame)) => frame,
                    };
                    match serving.on_frame(frame) {
                        Step::Send(frame) => {
                            if let Err(err) = feed(sink, frame).await {
                                return End::from_error(err);
                            }
                            unflushed = true;
                        }
                        Step::Wait(waiting) => running.push(waiting),
                        Step::Nothing => {}
                        Step::Close => return End::Close,
                    }
                    taken += 1;
                    next = if taken < FRAMES_PER_TURN && running.len() < serving.max_running {
                        frames.next().now_or_never()
                    } else {
                        None
                    };
                }
                None
            },
            () = std::future::ready(()), if unflushed => {
                if let Err(err) = SinkExt::<&Frame>::flush(sink).await {
                    return End::from_error(err);
                }
                unflushed = false;
                None
            }
        };
        if let Some(frame) = out {
            if let Err(err) = feed(sink, frame).await {
                return End::from_error(err);
            }
            unflushed = true;
        }
        if serving.draining && running.is_empty() {
            return End::Close;
        }
    }
}

/// Frames handled in one turn of the serving loop before it looks at anything else.
const FRAMES_PER_TURN: usize = 256;

/// A handler that had to wait, in the set of running ones until its response is ready.
struct Waiting {
    request: RequestId,
    slave: SlaveId,
    run: TaskRun,
}

impl Future for Waiting {
    type Output = Frame;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Frame> {
        let this = self.get_mut();
        Pin::new(&mut this.run)
            .poll(cx)
            .map(|outcome| response(this.request, this.slave, outcome))
    }
}

fn response(request: RequestId, slave: SlaveId, outcome: Result<Payload, TaskError>) -> Frame {
    Frame::Response(Response {
        request,
        slave,
        outcome,
    })
}

/// What reading one frame leads to.
enum Step {
    /// A frame to send back: a response, a refusal, a pong.
    Send(Frame),
    /// A request whose handler has to wait.
    Wait(Waiting),
    /// Nothing to do.
    Nothing,
    /// The master asked the slave to close.
    Close,
}

/// The request-handling state of the serving loop.
pub(crate) struct Serving<'a> {
    tasks: &'a TaskRegistry,
    slave: &'a SlaveHandle,
    /// Shut down: requests in progress finish, new ones are refused.
    draining: bool,
    /// While this many handlers wait, the connection is not read.
    max_running: usize,
}

impl<'a> Serving<'a> {
    /// Serving `tasks` as `slave`, with at most `max_running` (at least 1) handlers waiting.
    pub(crate) fn new(tasks: &'a TaskRegistry, slave: &'a SlaveHandle, max_running: usize) -> Self {
        Serving {
            tasks,
            slave,
            draining: false,
            max_running: max_running.max(1),
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Step {
        match frame {
            Frame::Request(req) => {
                let slave = self.slave.id();
                let refusal = if self.draining {
                    Some((
                        ErrorKind::Closed,
                        "is shutting down and takes no new requests",
                    ))
                } else if self.slave.is_paused() {
                    Some((ErrorKind::Paused, "is paused and not accepting messages"))
                } else {
                    None
                };
                if let Some((kind, why)) = refusal {
                    let error = TaskError::new(kind, format!("Slave #{slave} {why}"));
                    return Step::Send(response(req.id, slave, Err(error)));
                }
                let mut run = self.tasks.run(&req.task, req.payload, req.meta, self.slave);
                // Polled once right away; a handler that has to wait is polled again (with
                // a real waker) as soon as it joins the running set.
                match (&mut run).now_or_never() {
                    Some(outcome) => Step::Send(response(req.id, slave, outcome)),
                    None => Step::Wait(Waiting {
                        request: req.id,
                        slave,
                        run,
                    }),
                }
            }
            Frame::Control(Control::Close) => Step::Close,
            Frame::Control(Control::Shutdown) => {
                self.draining = true;
                Step::Nothing
            }
            Frame::Control(Control::Ping(n)) => Step::Send(Frame::Control(Control::Pong(n))),
            Frame::Control(Control::Pong(_)) => Step::Nothing,
            other => {
                if let Some(suppressed) = STRAY_FRAME.allow() {
                    tracing::warn!(
                        kind = other.kind(),
                        "ignoring a frame a master should not send \
                         ({suppressed} more ignored since the last such warning)"
                    );
                }
                Step::Nothing
            }
        }
    }
}

fn is_disconnect(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof
    )
}
