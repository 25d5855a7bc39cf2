//! A slave program and serving it: the builder, the handshake, and closing.

use distio_proto::{Frame, FrameCodec, ProtoError, Ready};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::outgoing::{flush_last, while_forwarding};
use crate::serving::{End, Serving, serve_requests};
use crate::{
    DEFAULT_EVENT_QUEUE, DEFAULT_MAX_RUNNING, SlaveError, SlaveHandle, TaskContext, TaskFailure,
    TaskRegistry, inherited,
};

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
///             Ok(format!("Hello from {}", ctx.slave().id()))
///         })
///         .task("square", |n: u64, _| async move { Ok(n * n) })
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
    /// The first task that could not be registered: `serve` reports it.
    refused: Option<SlaveError>,
}

impl std::fmt::Debug for SlaveProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlaveProcess")
            .field("tasks", &self.tasks.names())
            .field("on_close", &self.on_close.is_some())
            .field("event_queue", &self.event_queue)
            .field("max_running", &self.max_running)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl Default for SlaveProcess {
    fn default() -> Self {
        SlaveProcess {
            tasks: TaskRegistry::default(),
            on_close: None,
            codec: FrameCodec::default(),
            event_queue: DEFAULT_EVENT_QUEUE,
            max_running: DEFAULT_MAX_RUNNING,
            refused: None,
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

    /// Registers a task; see [`TaskRegistry::register`]. A name can be registered once: a
    /// second registration is refused, and [`serve`](Self::serve) then fails at once with
    /// [`SlaveError::DuplicateTask`] (so a builder chain needs no `?` per task; see
    /// [`check`](Self::check) to find out earlier).
    #[must_use]
    pub fn task<T, R, F, Fut>(self, name: impl Into<String>, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(T, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, TaskFailure>> + Send + 'static,
    {
        self.register_with(|tasks| tasks.register(name, handler).map(drop))
    }

    /// Registers through `register` on the slave's tasks; a refusal is kept for `serve`.
    pub(crate) fn register_with(
        mut self,
        register: impl FnOnce(&mut TaskRegistry) -> Result<(), SlaveError>,
    ) -> Self {
        if let Err(refused) = register(&mut self.tasks) {
            self.refused.get_or_insert(refused);
        }
        self
    }

    /// The slave, or the first registration it refused (a name given twice).
    ///
    /// ```
    /// use distio_slave::{SlaveError, SlaveProcess};
    ///
    /// let twice = SlaveProcess::new()
    ///     .task("ping", |_: (), _| async { Ok("pong") })
    ///     .task("ping", |_: (), _| async { Ok("pong again") });
    /// assert!(matches!(twice.check(), Err(SlaveError::DuplicateTask(name)) if name == "ping"));
    /// ```
    pub fn check(self) -> Result<Self, SlaveError> {
        match self.refused {
            Some(refused) => Err(refused),
            None => Ok(self),
        }
    }

    /// Sets the hook run when the master asks the slave to close, after it stops taking
    /// requests and before [`serve`](Self::serve) returns.
    #[must_use]
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
    #[must_use]
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
    ///             ctx.slave().emit_wait("step", &i).await?;
    ///         }
    ///         Ok(n)
    ///     });
    /// # drop(slave);
    /// # Ok::<(), distio_slave::SlaveError>(())
    /// ```
    #[must_use]
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
    ///         Ok(ms)
    ///     });
    /// # drop(slave);
    /// # Ok::<(), distio_slave::SlaveError>(())
    /// ```
    #[must_use]
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
    /// It uses the connection [`take_connection`](crate::take_connection) took, if it did;
    /// otherwise it takes it now: it marks it close-on-exec and removes
    /// [`SLAVE_FD_ENV`](distio_proto::local::SLAVE_FD_ENV) from this process's environment,
    /// so programs the slave starts do not inherit the link, and
    /// [`launched_as_slave`](crate::launched_as_slave) returns `false` afterwards.
    ///
    /// Taken here, the variable is removed while the runtime's threads (and any others the
    /// program started) exist. That is safe against std's environment functions, which take
    /// a lock, but it races C code reading the environment through libc (`getenv`) on
    /// another thread at that moment, which is undefined behaviour. To rule that out, call
    /// [`take_connection`](crate::take_connection) first thing in `main`, before building
    /// the runtime.
    pub async fn serve(self) -> Result<(), SlaveError> {
        let this = self.check()?;
        let stream = inherited::connection_for_serve()?;
        let stream = tokio::net::UnixStream::from_std(stream).map_err(ProtoError::Io)?;
        let (reader, writer) = stream.into_split();
        this.serve_split(reader, writer).await
    }

    /// Serves a master over any byte stream (a socket, an in-memory pipe in tests).
    pub async fn serve_on<IO>(self, io: IO) -> Result<(), SlaveError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let this = self.check()?;
        let (reader, writer) = tokio::io::split(io);
        this.serve_split(reader, writer).await
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
            refused: _,
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

        let serving = Serving::new(&tasks, &slave, max_running);
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
            // What was produced so far (responses, events the hook emitted) still goes out.
            flush_last(&mut outbox, &mut sink).await;
        }
        match end {
            End::Broken(err) => Err(err.into()),
            End::Close | End::MasterGone => Ok(()),
        }
    }
}
