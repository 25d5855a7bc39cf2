//! Serving a master: the handshake, the request loop, pause, shutdown and close.

use distio_proto::{
    Control, ErrorKind, Frame, FrameCodec, Payload, ProtoError, Ready, RequestId, Response,
    SlaveId, TaskError, Throttle,
};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{self, Receiver};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::{
    DEFAULT_EVENT_QUEUE, DEFAULT_MAX_RUNNING, SlaveError, SlaveHandle, TaskContext, TaskRegistry,
    TaskRun, inherited,
};

/// How long a closing slave waits for its last frames to be written.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// How often a warning a master (or a task) can repeat per frame is logged at most.
const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Frames a master should not send, ignored.
static STRAY_FRAME: Throttle = Throttle::new(WARN_INTERVAL);
/// Frames other than responses (events) over the size limit, dropped.
static OVERSIZED_FRAME: Throttle = Throttle::new(WARN_INTERVAL);

type CloseHook = Box<dyn FnOnce(SlaveHandle) -> BoxFuture<'static, ()> + Send>;

/// A slave program: named tasks, an optional close hook, and the loop that serves them to
/// the master that started this process.
///
/// ```no_run
/// use distio_slave::SlaveProcess;
///
/// #[tokio::main]
/// async fn main() -> Result<(), distio_slave::SlaveError> {
///     SlaveProcess::new()
///         .task("say hello", |_: (), ctx| async move {
///             Ok::<_, String>(format!("Hello from {}", ctx.slave().id()))
///         })?
///         .task("square", |n: u64, _| async move { Ok::<_, String>(n * n) })?
///         .on_close(|_slave| async { eprintln!("bye") })
///         .serve()
///         .await
/// }
/// ```
pub struct SlaveProcess {
    tasks: TaskRegistry,
    on_close: Option<CloseHook>,
    codec: FrameCodec,
    /// Capacity of the queue of events waiting to be written; at least 1.
    event_queue: usize,
    /// Handlers that wait, run at once at most; at least 1.
    max_running: usize,
}

impl Default for SlaveProcess {
    fn default() -> Self {
        SlaveProcess {
            tasks: TaskRegistry::default(),
            on_close: None,
            codec: FrameCodec::default(),
            event_queue: DEFAULT_EVENT_QUEUE,
            max_running: DEFAULT_MAX_RUNNING,
        }
    }
}

impl SlaveProcess {
    /// A slave with no tasks.
    pub fn new() -> Self {
        SlaveProcess::default()
    }

    /// A slave serving the tasks of `tasks`.
    pub fn with_tasks(tasks: TaskRegistry) -> Self {
        SlaveProcess {
            tasks,
            ..SlaveProcess::default()
        }
    }

    /// Registers a task; see [`TaskRegistry::register`]. A name can be registered once.
    pub fn task<T, R, E, F, Fut>(
        mut self,
        name: impl Into<String>,
        handler: F,
    ) -> Result<Self, SlaveError>
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(T, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        self.tasks.register(name, handler)?;
        Ok(self)
    }

    /// Sets the hook run when the master asks the slave to close, after it stops taking
    /// requests and before [`serve`](Self::serve) returns.
    pub fn on_close<F, Fut>(mut self, hook: F) -> Self
    where
        F: FnOnce(SlaveHandle) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_close = Some(Box::new(move |slave| hook(slave).boxed()));
        self
    }

    /// Sets the frame-size limit (default [`distio_proto::DEFAULT_MAX_FRAME_LEN`]); it must
    /// match the master's.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.codec = FrameCodec::with_max_frame_len(max);
        self
    }

    /// Sets how many events can wait to be written to the master (default
    /// [`DEFAULT_EVENT_QUEUE`]; 0 counts as 1).
    ///
    /// When a master that is not reading has let the queue fill,
    /// [`SlaveHandle::emit`] drops the event and returns
    /// [`SlaveError::EventQueueFull`], and [`SlaveHandle::emit_wait`] waits for room.
    ///
    /// ```
    /// use distio_slave::SlaveProcess;
    ///
    /// let slave = SlaveProcess::new()
    ///     .event_queue(16)
    ///     .task("progress", |n: u32, ctx| async move {
    ///         for i in 0..n {
    ///             ctx.slave().emit_wait("step", &i).await.map_err(|e| e.to_string())?;
    ///         }
    ///         Ok::<_, String>(n)
    ///     })?;
    /// # drop(slave);
    /// # Ok::<(), distio_slave::SlaveError>(())
    /// ```
    pub fn event_queue(mut self, capacity: usize) -> Self {
        self.event_queue = capacity.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self
    }

    /// Sets how many handlers that wait can run at once (default
    /// [`DEFAULT_MAX_RUNNING`]; 0 counts as 1).
    ///
    /// When that many are waiting, the slave stops reading its connection until one
    /// finishes: further requests (and pings, and a close) wait in the socket, while the
    /// responses and events of what was already read keep going out.
    ///
    /// ```
    /// use distio_slave::SlaveProcess;
    /// use std::time::Duration;
    ///
    /// let slave = SlaveProcess::new()
    ///     .max_running(8)
    ///     .task("fetch", |ms: u64, _| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         Ok::<_, String>(ms)
    ///     })?;
    /// # drop(slave);
    /// # Ok::<(), distio_slave::SlaveError>(())
    /// ```
    pub fn max_running(mut self, max: usize) -> Self {
        self.max_running = max.max(1);
        self
    }

    /// The registered tasks.
    pub fn tasks(&self) -> &TaskRegistry {
        &self.tasks
    }

    /// Serves the master that launched this process until it asks the slave to close or
    /// goes away; then returns, and the program should exit.
    ///
    /// Fails at once if this process was not launched by a distio master.
    ///
    /// Taking the connection marks it close-on-exec and removes
    /// [`SLAVE_FD_ENV`](distio_proto::local::SLAVE_FD_ENV) from this process's environment,
    /// so programs the slave starts do not inherit the link, and
    /// [`launched_as_slave`](crate::launched_as_slave) returns `false` afterwards. Removing
    /// a variable is safe against std's own environment functions but not against C code
    /// calling `getenv` on another thread at that moment: call `serve` before starting
    /// threads that read the environment through libc.
    pub async fn serve(self) -> Result<(), SlaveError> {
        let stream = inherited::take_inherited_connection()?;
        let stream = tokio::net::UnixStream::from_std(stream).map_err(ProtoError::Io)?;
        let (reader, writer) = stream.into_split();
        self.serve_split(reader, writer).await
    }

    /// Serves a master over any byte stream (a socket, an in-memory pipe in tests).
    pub async fn serve_on<IO>(self, io: IO) -> Result<(), SlaveError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(io);
        self.serve_split(reader, writer).await
    }

    async fn serve_split<R, W>(self, reader: R, writer: W) -> Result<(), SlaveError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let SlaveProcess {
            tasks,
            on_close,
            codec,
            event_queue,
            max_running,
        } = self;
        let mut frames = FramedRead::new(reader, codec);
        let hello = match frames.next().await {
            Some(Ok(Frame::Hello(hello))) => hello,
            Some(Ok(other)) => return Err(SlaveError::UnexpectedFirstFrame(other.kind())),
            Some(Err(err)) => return Err(err.into()),
            None => return Err(SlaveError::NoHello),
        };
        hello.check()?;
        let identity = hello.identity;

        let mut sink = FramedWrite::new(writer, codec);
        let ready = Ready::new(
            std::process::id(),
            identity.id,
            identity.alias.clone(),
            tasks.names(),
        );
        sink.send(&Frame::Ready(ready)).await?;
        let (tx, mut outbox) = mpsc::channel(event_queue);
        let slave = SlaveHandle::new(identity, Some(tx));
        tracing::debug!(id = slave.id(), alias = slave.alias(), "slave serving");

        let serving = Serving {
            tasks: &tasks,
            slave: &slave,
            draining: false,
            max_running,
        };
        let end = serve_requests(&mut frames, &mut sink, &mut outbox, serving).await;
        match &end {
            End::Close => tracing::debug!(id = slave.id(), "slave closing on request"),
            End::MasterGone => tracing::info!(id = slave.id(), "master went away; slave exiting"),
            End::Broken(err) => {
                tracing::error!(id = slave.id(), "connection to master failed: {err}")
            }
        }
        if matches!(end, End::Close)
            && let Some(hook) = on_close
        {
            while_forwarding(hook(slave.clone()), &mut outbox, &mut sink).await;
        }
        if !matches!(end, End::MasterGone) {
            // What was produced so far (responses, events the hook emitted) still goes out;
            // nothing new joins it.
            outbox.close();
            let last = async {
                while let Ok(frame) = outbox.try_recv() {
                    feed(&mut sink, frame).await?;
                }
                SinkExt::<&Frame>::flush(&mut sink).await
            };
            match tokio::time::timeout(FLUSH_GRACE, last).await {
                Ok(Err(err)) => {
                    tracing::warn!("could not send the last frames to the master: {err}")
                }
                Err(_) => tracing::warn!("the master stopped reading; last frames dropped"),
                Ok(Ok(())) => {}
            }
        }
        match end {
            End::Broken(err) => Err(err.into()),
            End::Close | End::MasterGone => Ok(()),
        }
    }
}

/// Why the request loop ended.
enum End {
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
async fn serve_requests<R, W>(
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

/// Runs `work` (the close hook) while writing the events queued meanwhile, so that one
/// waiting for room in the queue ([`SlaveHandle::emit_wait`]) is not stuck behind it.
///
/// An event leaves the queue only once the sink has room for it, so none is lost when
/// `work` finishes mid-write: the rest is flushed with the last frames.
async fn while_forwarding<W: AsyncWrite + Unpin>(
    work: impl Future<Output = ()>,
    outbox: &mut Receiver<Frame>,
    sink: &mut FramedWrite<W, FrameCodec>,
) {
    let forward = async {
        loop {
            std::future::poll_fn(|cx| SinkExt::<&Frame>::poll_ready_unpin(sink, cx)).await?;
            let Some(frame) = outbox.recv().await else {
                return Ok(());
            };
            feed(sink, frame).await?;
            if outbox.is_empty() {
                SinkExt::<&Frame>::flush(sink).await?;
            }
        }
    };
    let mut work = std::pin::pin!(work);
    let forwarded: Result<(), ProtoError> = tokio::select! {
        () = &mut work => return,
        forwarded = forward => forwarded,
    };
    // The master cannot be written to: refuse further events rather than let the hook
    // wait for room that never comes. The last flush reports the error.
    if let Err(err) = forwarded {
        tracing::debug!("stopped sending events during the close hook: {err}");
    }
    outbox.close();
    work.await;
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
struct Serving<'a> {
    tasks: &'a TaskRegistry,
    slave: &'a SlaveHandle,
    /// Shut down: requests in progress finish, new ones are refused.
    draining: bool,
    /// While this many handlers wait, the connection is not read.
    max_running: usize,
}

impl Serving<'_> {
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

/// Queues one frame for writing; a response too large for a frame becomes an error response.
async fn feed<W: AsyncWrite + Unpin>(
    sink: &mut FramedWrite<W, FrameCodec>,
    frame: Frame,
) -> Result<(), ProtoError> {
    match sink.feed(&frame).await {
        Err(ProtoError::FrameTooLarge { len, max }) => match frame {
            Frame::Response(Response { request, slave, .. }) => {
                let error = TaskError::new(
                    ErrorKind::HandlerFailed,
                    format!("the result is {len} bytes, more than the {max}-byte frame limit"),
                );
                sink.feed(&Frame::Response(Response {
                    request,
                    slave,
                    outcome: Err(error),
                }))
                .await
            }
            other => {
                if let Some(suppressed) = OVERSIZED_FRAME.allow() {
                    tracing::warn!(
                        kind = other.kind(),
                        len,
                        max,
                        "dropping a frame over the size limit \
                         ({suppressed} more dropped since the last such warning)"
                    );
                }
                Ok(())
            }
        },
        result => result,
    }
}
