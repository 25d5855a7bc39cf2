//! Pipeline: each step's value is the next step's data.

use distio_proto::{Metadata, Payload};
use serde::Serialize;
use std::sync::Arc;

use crate::{Answer, IntoTransport, PatternError, Reply, SharedTransport};

/// What a pipeline intercept decides after a step: go on, finish now, or fail.
///
/// The intercept receives the step's reply by value and hands back the reply the pipeline
/// goes on (or finishes) with, changed or not; a failure carries any error type, which the
/// caller gets back as the [`source`](std::error::Error::source) of
/// [`PatternError::InterceptFailed`].
///
/// ```
/// use distio_patterns::prelude::*;
/// use distio_patterns::{InProcess, Intercept, PatternError, Pipeline};
/// use distio_slave::TaskRegistry;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("{0} is odd")]
/// struct Odd(u64);
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("add one", |n: u64, _| async move { Ok(n + 1) })?;
/// let worker = InProcess::new(0, tasks);
///
/// let pipeline = Pipeline::new()
///     .step("add one", &worker)
///     .intercept(|reply| match reply.value::<u64>() {
///         Ok(n) if n % 2 == 1 => Intercept::fail(Odd(n)),
///         Ok(n) if n > 100 => Intercept::finish_with(reply, &0u64), // end with a value
///         Ok(n) => Intercept::continue_with(reply, &(n * 10)),    // change the value
///         Err(error) => Intercept::fail(error),
///     })
///     .step("add one", &worker);
///
/// assert_eq!(pipeline.execute(&1u64).await?.value::<u64>()?, 21);
/// assert_eq!(pipeline.execute(&101u64).await?.value::<u64>()?, 0);
/// match pipeline.execute(&2u64).await {
///     Err(PatternError::InterceptFailed { step: 0, error }) => {
///         assert_eq!(error.downcast_ref::<Odd>().map(|odd| odd.0), Some(3));
///     }
///     other => panic!("expected the intercept to fail, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[must_use = "an intercept decides nothing until the pipeline receives it"]
pub enum Intercept {
    /// Go on to the next step, giving it this reply's value (or, after the last step,
    /// resolve with this reply).
    Continue(Reply),
    /// Stop now; the pipeline resolves with this reply, and later steps do not run.
    Finish(Reply),
    /// Stop now; the pipeline fails with [`PatternError::InterceptFailed`] carrying this
    /// error.
    Fail(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Intercept {
    /// Go on with `value` in place of the reply's value. If `value` cannot be encoded,
    /// the pipeline fails with that [`PatternError::Encode`].
    ///
    /// ```
    /// use distio_patterns::prelude::*;
    /// use distio_patterns::{Intercept, Reply};
    /// use distio_proto::Payload;
    /// use std::time::Duration;
    ///
    /// let reply = Reply::new(0, "t", "add one", Ok(Payload::encode(&2u64)?), Duration::ZERO);
    /// let Intercept::Continue(next) = Intercept::continue_with(reply, &20u64) else { panic!() };
    /// assert_eq!(next.value::<u64>()?, 20);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn continue_with<T: Serialize + ?Sized>(reply: Reply, value: &T) -> Self {
        match reply.with_value(value) {
            Ok(reply) => Intercept::Continue(reply),
            Err(error) => Intercept::fail(error),
        }
    }

    /// Finish now with `value` in place of the reply's value. If `value` cannot be encoded,
    /// the pipeline fails with that [`PatternError::Encode`].
    ///
    /// ```
    /// use distio_patterns::prelude::*;
    /// use distio_patterns::{Intercept, Reply};
    /// use distio_proto::Payload;
    /// use std::time::Duration;
    ///
    /// let reply = Reply::new(0, "t", "add one", Ok(Payload::encode(&2u64)?), Duration::ZERO);
    /// let Intercept::Finish(last) = Intercept::finish_with(reply, "done") else { panic!() };
    /// assert_eq!(last.value::<String>()?, "done");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish_with<T: Serialize + ?Sized>(reply: Reply, value: &T) -> Self {
        match reply.with_value(value) {
            Ok(reply) => Intercept::Finish(reply),
            Err(error) => Intercept::fail(error),
        }
    }

    /// Fail with `error`: any `std::error::Error + Send + Sync + 'static`, or a message
    /// (`&str`, `String`).
    ///
    /// ```
    /// use distio_patterns::Intercept;
    ///
    /// let Intercept::Fail(error) = Intercept::fail("out of range") else { panic!() };
    /// assert_eq!(error.to_string(), "out of range");
    /// ```
    pub fn fail(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Intercept::Fail(error.into())
    }
}

type InterceptFn = Arc<dyn Fn(Reply) -> Intercept + Send + Sync>;

struct Step {
    task: String,
    target: SharedTransport,
    meta: Metadata,
    intercept: Option<InterceptFn>,
}

/// Steps of (task, target) run one after another: the initial data goes to the first step,
/// each step's value to the next, and the last step's reply is the result. An
/// [`Intercept`] after a step may change the value, finish the pipeline early, or fail it.
/// A step that fails ends the pipeline with its error. Reusable:
/// [`execute`](Self::execute) can run again.
///
/// ```
/// use distio_patterns::prelude::*;
/// use distio_patterns::{InProcess, Intercept, Pipeline};
/// use distio_slave::TaskRegistry;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("add one", |n: u64, _| async move { Ok(n + 1) })?;
/// tasks.register("double", |n: u64, _| async move { Ok(n * 2) })?;
/// let worker = InProcess::new(0, tasks);
///
/// let pipeline = Pipeline::new()
///     .step("add one", &worker)
///     .intercept(|reply| {
///         let n: u64 = reply.value().unwrap_or(0);
///         if n > 100 { Intercept::Finish(reply) } else { Intercept::Continue(reply) }
///     })
///     .step("double", &worker);
/// assert_eq!(pipeline.execute(&4u64).await?.value::<u64>()?, 10);
/// assert_eq!(pipeline.execute(&500u64).await?.value::<u64>()?, 501); // finished early
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct Pipeline {
    steps: Vec<Step>,
    misuse: Option<&'static str>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("steps", &self.steps.len())
            .field("misuse", &self.misuse)
            .finish()
    }
}

impl Pipeline {
    /// A pipeline with no steps.
    pub fn new() -> Self {
        Pipeline::default()
    }

    /// Appends a step running `task` on `target`: a transport, or a borrowed handle such as
    /// `&slave` or `&slaves[1]`.
    #[must_use]
    pub fn step(self, task: impl Into<String>, target: impl IntoTransport) -> Self {
        self.step_with_meta(task, target, Metadata::new())
    }

    /// Appends a step running `task` on `target` with `meta`.
    ///
    /// ```
    /// use distio_patterns::{InProcess, Pipeline};
    /// use distio_proto::Metadata;
    /// use distio_slave::TaskRegistry;
    /// use std::time::Duration;
    ///
    /// let worker = InProcess::new(0, TaskRegistry::new());
    /// let meta = Metadata::new().with_timeout(Duration::from_secs(5));
    /// let pipeline = Pipeline::new().step_with_meta("slow", &worker, meta);
    /// assert_eq!(pipeline.len(), 1);
    /// ```
    #[must_use]
    pub fn step_with_meta(
        mut self,
        task: impl Into<String>,
        target: impl IntoTransport,
        meta: Metadata,
    ) -> Self {
        self.steps.push(Step {
            task: task.into(),
            target: target.into_transport(),
            meta,
            intercept: None,
        });
        self
    }

    /// Sets the intercept run after the last step added so far (replacing one set before).
    /// It runs once per execution of that step, on its successful reply, and returns an
    /// [`Intercept`] saying what happens next; see there for an example.
    #[must_use]
    pub fn intercept(
        mut self,
        intercept: impl Fn(Reply) -> Intercept + Send + Sync + 'static,
    ) -> Self {
        match self.steps.last_mut() {
            Some(step) => step.intercept = Some(Arc::new(intercept)),
            None => self.misuse = Some("an intercept was added before any step"),
        }
        self
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True if the pipeline has no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the pipeline on `initial`; resolves with the last step's reply (or the reply an
    /// intercept ended on).
    pub async fn execute<T: Serialize + ?Sized>(&self, initial: &T) -> Result<Reply, PatternError> {
        self.execute_payload(Payload::encode(initial).map_err(PatternError::Encode)?)
            .await
    }

    /// [`execute`](Self::execute) with data that is already encoded.
    pub async fn execute_payload(&self, mut data: Payload) -> Result<Reply, PatternError> {
        if let Some(reason) = self.misuse {
            return Err(PatternError::Invalid {
                pattern: "pipeline",
                reason: reason.into(),
            });
        }
        if self.steps.is_empty() {
            return Err(PatternError::Empty {
                pattern: "pipeline",
                what: "steps",
            });
        }
        let mut steps = self.steps.iter().enumerate().peekable();
        while let Some((index, step)) = steps.next() {
            let reply = step
                .target
                .send(&step.task, data, step.meta.clone())
                .await?;
            let step_error = |error: &distio_proto::TaskError| PatternError::Step {
                step: index,
                task: step.task.clone(),
                error: error.clone(),
            };
            if let Some(error) = reply.error() {
                return Err(step_error(error));
            }
            let reply = match &step.intercept {
                None => reply,
                Some(intercept) => match intercept(reply) {
                    Intercept::Continue(reply) => reply,
                    Intercept::Finish(reply) => return Ok(reply),
                    Intercept::Fail(error) => {
                        return Err(PatternError::InterceptFailed { step: index, error });
                    }
                },
            };
            if steps.peek().is_none() {
                return Ok(reply);
            }
            data = match reply.outcome() {
                Ok(payload) => payload.clone(),
                Err(error) => return Err(step_error(error)),
            };
        }
        Err(PatternError::Empty {
            pattern: "pipeline",
            what: "steps",
        })
    }
}
