//! Named tasks and how a request runs against them.

use distio_proto::{ErrorKind, Metadata, Payload, TaskError};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::{SlaveError, SlaveHandle, TaskContext};

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
/// tasks.register("square", |n: u64, _ctx| async move { Ok::<_, String>(n * n) })?;
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
    tasks: HashMap<String, (Arc<str>, Arc<Handler>)>,
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        TaskRegistry::default()
    }

    /// Registers `handler` under `name`.
    ///
    /// The handler receives the request's data decoded as `T` and a [`TaskContext`]; it
    /// returns the response value or an error whose text becomes the error response's
    /// message. A slave runs requests concurrently on its serving task, so a handler that
    /// awaits never holds up another; a handler that computes for long without awaiting
    /// does, so move such work to `tokio::task::spawn_blocking`.
    pub fn register<T, R, E, F, Fut>(
        &mut self,
        name: impl Into<String>,
        handler: F,
    ) -> Result<&mut Self, SlaveError>
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(T, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
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
    /// The returned future is `'static`: it can be spawned.
    pub fn run(
        &self,
        name: &str,
        payload: Payload,
        meta: Metadata,
        slave: &SlaveHandle,
    ) -> impl Future<Output = Result<Payload, TaskError>> + Send + 'static {
        let found = self.tasks.get(name).cloned();
        let unknown = match found {
            Some(_) => None,
            None => Some(format!(
                "Slave #{} does not listen to task \"{name}\"",
                slave.id()
            )),
        };
        let slave = slave.clone();
        async move {
            let Some((name, handler)) = found else {
                return Err(TaskError::new(
                    ErrorKind::UnknownTask,
                    unknown.unwrap_or_default(),
                ));
            };
            let timeout = meta.timeout.filter(|t| !t.is_zero());
            let ctx = TaskContext::new(meta, slave);
            let guarded = AssertUnwindSafe(handler(payload, ctx)).catch_unwind();
            let outcome = match timeout {
                None => guarded.await,
                // Boxed: most requests have no timeout, and an inline timer would make every
                // request's future (moved into the serving task's queue) several times larger.
                Some(limit) => match Box::pin(tokio::time::timeout(limit, guarded)).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        return Err(TaskError::new(
                            ErrorKind::TimedOut,
                            format!("task \"{name}\" did not finish within {limit:?}"),
                        ));
                    }
                },
            };
            outcome.unwrap_or_else(|panic| {
                Err(TaskError::new(
                    ErrorKind::HandlerPanicked,
                    format!("task \"{name}\" panicked: {}", panic_message(&*panic)),
                ))
            })
        }
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
        reg.register("fail", |_: (), _| async { Err::<(), _>("boom") })
            .unwrap();
        reg.register("panic", |_: (), _| async {
            panic!("kaboom") as Result<(), String>
        })
        .unwrap();
        reg.register("sleep", |ms: u64, _| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, String>(ms)
        })
        .unwrap();
        reg
    }

    #[tokio::test]
    async fn duplicate_names_are_refused() {
        let mut reg = registry();
        let err = reg
            .register("fail", |_: (), _| async { Ok::<(), String>(()) })
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
