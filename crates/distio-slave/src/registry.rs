//! Named tasks and how a request runs against them.

use distio_proto::{ErrorKind, Metadata, Payload, TaskError};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

use crate::{SlaveError, SlaveHandle, TaskContext, TaskFailure};

/// A type-erased task handler: payload in, payload or task error out.
type Handler =
    dyn Fn(Payload, TaskContext) -> BoxFuture<'static, Result<Payload, TaskError>> + Send + Sync;

/// A set of named async tasks, and the rules for running a request against them.
///
/// [`SlaveProcess`](crate::SlaveProcess) serves one to its master; it can also run requests
/// in-process with [`TaskRegistry::run`], with the same semantics: unknown task, input that
/// does not decode, handler errors, handler panics and the request timeout all become a
/// [`TaskError`], never a panic.
///
/// ```
/// use distio_proto::{ErrorKind, Metadata, Payload};
/// use distio_slave::{SlaveHandle, TaskRegistry};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("square", |n: u64, _ctx| async move { Ok(n * n) })?;
///
/// let slave = SlaveHandle::detached(0, "local");
/// let out = tasks.run("square", Payload::encode(&7u64)?, Metadata::new(), &slave).await;
/// assert_eq!(out.unwrap().decode::<u64>()?, 49);
///
/// let missing = tasks.run("cube", Payload::empty(), Metadata::new(), &slave).await;
/// assert_eq!(missing.unwrap_err().kind, ErrorKind::UnknownTask);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct TaskRegistry {
    /// Name → (the name again, shared for messages; the handler).
    tasks: HashMap<String, (Arc<str>, Arc<Handler>), BuildHasherDefault<NameHasher>>,
}

/// FNV-1a over task names. Names are fixed before serving starts and a master can only
/// look them up, never add one, so there is no table to flood; SipHash would only cost
/// time on every request.
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        TaskRegistry::default()
    }

    /// Registers `handler` under `name`.
    ///
    /// The handler receives the request's data decoded as `T` and a [`TaskContext`]; it
    /// returns the response value or a [`TaskFailure`] whose message becomes the error
    /// response's (`?` turns any std error into one). A slave runs requests concurrently on its serving task, so a handler that
    /// awaits never holds up another; a handler that computes for long without awaiting
    /// does, so move such work to `tokio::task::spawn_blocking`.
    pub fn register<T, R, F, Fut>(
        &mut self,
        name: impl Into<String>,
        handler: F,
    ) -> Result<&mut Self, SlaveError>
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(T, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, TaskFailure>> + Send + 'static,
    {
        let name = name.into();
        if self.tasks.contains_key(&name) {
            return Err(SlaveError::DuplicateTask(name));
        }
        let handler = Arc::new(handler);
        let task_name: Arc<str> = Arc::from(name.as_str());
        let shared_name = Arc::clone(&task_name);
        let erased = move |payload: Payload, ctx: TaskContext| {
            let handler = Arc::clone(&handler);
            let task_name = Arc::clone(&task_name);
            async move {
                let input: T = payload.decode().map_err(|err| {
                    TaskError::new(
                        ErrorKind::HandlerFailed,
                        format!("task \"{task_name}\" could not decode its input: {err}"),
                    )
                })?;
                let value = handler(input, ctx)
                    .await
                    .map_err(|err| TaskError::new(ErrorKind::HandlerFailed, err.to_string()))?;
                Payload::encode(&value).map_err(|err| {
                    TaskError::new(
                        ErrorKind::HandlerFailed,
                        format!("task \"{task_name}\" could not encode its result: {err}"),
                    )
                })
            }
            .boxed()
        };
        self.tasks.insert(name, (shared_name, Arc::new(erased)));
        Ok(self)
    }

    /// The registered task names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tasks.keys().cloned().collect();
        names.sort();
        names
    }

    /// True if a task of that name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    /// Runs task `name` on `payload` as slave `slave`, applying the request's timeout.
    ///
    /// The returned future is `'static` and `Unpin`: it can be spawned, or polled in place.
    pub fn run(
        &self,
        name: &str,
        payload: Payload,
        meta: Metadata,
        slave: &SlaveHandle,
    ) -> TaskRun {
        let Some((name, handler)) = self.tasks.get(name) else {
            return TaskRun::failed(TaskError::new(
                ErrorKind::UnknownTask,
                format!("Slave #{} does not listen to task \"{name}\"", slave.id()),
            ));
        };
        let timeout = meta.timeout.filter(|t| !t.is_zero());
        let handler = handler(payload, TaskContext::new(meta, slave.clone()));
        TaskRun {
            name: Arc::clone(name),
            state: RunState::Running {
                handler,
                timeout,
                timer: None,
            },
        }
    }
}

/// One request running against a [`TaskRegistry`]: resolves to the encoded result, or to
/// the [`TaskError`] an unknown task, undecodable input, a handler error or panic, or the
/// request's timeout produced. Made by [`TaskRegistry::run`].
///
/// ```
/// use distio_proto::{Metadata, Payload};
/// use distio_slave::{SlaveHandle, TaskRegistry};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("double", |n: u64, _| async move { Ok(n * 2) })?;
/// let run = tasks.run("double", Payload::encode(&21u64)?, Metadata::new(), &SlaveHandle::detached(0, "d"));
/// assert_eq!(run.await?.decode::<u64>()?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[must_use = "a task runs when it is polled"]
pub struct TaskRun {
    name: Arc<str>,
    state: RunState,
}

enum RunState {
    Running {
        handler: BoxFuture<'static, Result<Payload, TaskError>>,
        timeout: Option<Duration>,
        /// Started when the handler first has to wait: most finish at their first poll.
        timer: Option<Pin<Box<Sleep>>>,
    },
    Failed(TaskError),
    Done,
}

impl TaskRun {
    fn failed(error: TaskError) -> Self {
        TaskRun {
            name: Arc::from(""),
            state: RunState::Failed(error),
        }
    }
}

impl Future for TaskRun {
    type Output = Result<Payload, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let outcome = match &mut this.state {
            RunState::Running {
                handler,
                timeout,
                timer,
            } => match catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx))) {
                Ok(Poll::Ready(outcome)) => outcome,
                Err(panic) => Err(TaskError::new(
                    ErrorKind::HandlerPanicked,
                    format!(
                        "task \"{}\" panicked: {}",
                        this.name,
                        panic_message(&*panic)
                    ),
                )),
                Ok(Poll::Pending) => {
                    let Some(limit) = *timeout else {
                        return Poll::Pending;
                    };
                    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    Err(TaskError::new(
                        ErrorKind::TimedOut,
                        format!("task \"{}\" did not finish within {limit:?}", this.name),
                    ))
                }
            },
            RunState::Failed(_) => match std::mem::replace(&mut this.state, RunState::Done) {
                RunState::Failed(error) => Err(error),
                _ => unreachable!("matched just above"),
            },
            RunState::Done => panic!("TaskRun polled after it completed"),
        };
        // Dropping the handler here also frees what it holds as soon as it is done.
        this.state = RunState::Done;
        Poll::Ready(outcome)
    }
}

impl std::fmt::Debug for TaskRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRun")
            .field("task", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRegistry")
            .field("tasks", &self.names())
            .finish()
    }
}

/// The text of a panic payload, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slave() -> SlaveHandle {
        SlaveHandle::detached(4, "t")
    }

    async fn run(
        reg: &TaskRegistry,
        task: &str,
        payload: Payload,
        meta: Metadata,
    ) -> Result<Payload, TaskError> {
        reg.run(task, payload, meta, &slave()).await
    }

    fn registry() -> TaskRegistry {
        let mut reg = TaskRegistry::new();
        reg.register("fail", |_: (), _| async {
            Err::<(), _>(TaskFailure::new("boom"))
        })
        .unwrap();
        reg.register("panic", |_: (), _| async {
            panic!("kaboom") as Result<(), TaskFailure>
        })
        .unwrap();
        reg.register("sleep", |ms: u64, _| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ms)
        })
        .unwrap();
        reg
    }

    #[tokio::test]
    async fn duplicate_names_are_refused() {
        let mut reg = registry();
        let err = reg
            .register("fail", |_: (), _| async { Ok(()) })
            .err()
            .unwrap();
        assert!(
            matches!(err, SlaveError::DuplicateTask(ref n) if n == "fail"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unknown_task_message_names_slave_and_task() {
        let err = run(&registry(), "nope", Payload::empty(), Metadata::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownTask);
        assert_eq!(err.message, "Slave #4 does not listen to task \"nope\"");
    }

    #[tokio::test]
    async fn handler_error_and_panic_become_task_errors() {
        let err = run(&registry(), "fail", Payload::empty(), Metadata::new())
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (ErrorKind::HandlerFailed, "boom")
        );
        let err = run(&registry(), "panic", Payload::empty(), Metadata::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::HandlerPanicked);
        assert!(err.message.contains("kaboom"), "{}", err.message);
    }

    #[tokio::test]
    async fn bad_input_names_the_task() {
        let err = run(
            &registry(),
            "sleep",
            Payload::encode("x").unwrap(),
            Metadata::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::HandlerFailed);
        assert!(
            err.message.contains("\"sleep\" could not decode its input"),
            "{}",
            err.message
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_applies_and_zero_means_none() {
        let meta = Metadata::new().with_timeout(Duration::from_millis(10));
        let err = run(
            &registry(),
            "sleep",
            Payload::encode(&1000u64).unwrap(),
            meta,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TimedOut);
        let meta = Metadata::new().with_timeout(Duration::ZERO);
        let ok = run(
            &registry(),
            "sleep",
            Payload::encode(&1000u64).unwrap(),
            meta,
        )
        .await
        .unwrap();
        assert_eq!(ok.decode::<u64>().unwrap(), 1000);
    }
}
