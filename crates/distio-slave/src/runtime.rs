//! Serving a master: the handshake, the request loop, pause, shutdown and close.

use distio_proto::{Control, ErrorKind, Frame, FrameCodec, ProtoError, Ready, Response, TaskError};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::{SlaveError, SlaveHandle, TaskContext, TaskRegistry, inherited};

/// How long a closing slave waits for its last frames to be written.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

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
#[derive(Default)]
pub struct SlaveProcess {
    tasks: TaskRegistry,
    on_close: Option<CloseHook>,
    codec: FrameCodec,
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

    /// The registered tasks.
    pub fn tasks(&self) -> &TaskRegistry {
        &self.tasks
    }

    /// Serves the master that launched this process until it asks the slave to close or
    /// goes away; then returns, and the program should exit.
    ///
    /// Fails at once if this process was not launched by a distio master.
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
        let (tx, mut outbox) = mpsc::unbounded_channel();
        let slave = SlaveHandle::new(identity, Some(tx));
        tracing::debug!(id = slave.id(), alias = slave.alias(), "slave serving");

        let end = serve_requests(&mut frames, &mut sink, &mut outbox, &tasks, &slave).await;
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
            hook(slave.clone()).await;
        }
        if !matches!(end, End::MasterGone) {
            // What was produced so far (responses, events the hook emitted) still goes out.
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
async fn serve_requests<R, W>(
    frames: &mut FramedRead<R, FrameCodec>,
    sink: &mut FramedWrite<W, FrameCodec>,
    outbox: &mut UnboundedReceiver<Frame>,
    tasks: &TaskRegistry,
    slave: &SlaveHandle,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut running = FuturesUnordered::new();
    let mut draining = false;
    let mut unflushed = false;
    let refuse = |request, kind, message: String| {
        Frame::Response(Response {
            request,
            slave: slave.id(),
            outcome: Err(TaskError::new(kind, message)),
        })
    };
    loop {
        let out = tokio::select! {
            biased;
            Some(response) = running.next(), if !running.is_empty() => Some(response),
            Some(frame) = outbox.recv() => Some(frame),
            frame = frames.next() => match frame {
                None => return End::MasterGone,
                Some(Err(err)) => return End::from_error(err),
                Some(Ok(Frame::Request(req))) => {
                    if draining {
                        let message = format!("Slave #{} is shutting down and takes no new requests", slave.id());
                        Some(refuse(req.id, ErrorKind::Closed, message))
                    } else if slave.is_paused() {
                        let message = format!("Slave #{} is paused and not accepting messages", slave.id());
                        Some(refuse(req.id, ErrorKind::Paused, message))
                    } else {
                        let run = tasks.run(&req.task, req.payload, req.meta, slave);
                        let (request, id) = (req.id, slave.id());
                        running.push(async move {
                            Frame::Response(Response { request, slave: id, outcome: run.await })
                        });
                        None
                    }
                }
                Some(Ok(Frame::Control(Control::Close))) => return End::Close,
                Some(Ok(Frame::Control(Control::Shutdown))) => {
                    draining = true;
                    None
                }
                Some(Ok(Frame::Control(Control::Ping(n)))) => Some(Frame::Control(Control::Pong(n))),
                Some(Ok(Frame::Control(Control::Pong(_)))) => None,
                Some(Ok(other)) => {
                    tracing::warn!(kind = other.kind(), "ignoring a frame a master should not send");
                    None
                }
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
        if draining && running.is_empty() {
            return End::Close;
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
                tracing::warn!(
                    kind = other.kind(),
                    len,
                    max,
                    "dropping a frame over the size limit"
                );
                Ok(())
            }
        },
        result => result,
    }
}
