//! Pipeline: each step's value is the next step's data.

use distio_proto::{Metadata, Payload};
use serde::Serialize;
use std::sync::Arc;

use crate::{PatternError, Reply, SharedTransport, Transport};

/// What an intercept tells the pipeline to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on to the next step with the (possibly changed) reply's value.
    Continue,
    /// Stop now; the pipeline resolves with this reply.
    End,
    /// Stop now with an error carrying this message.
    Fail(String),
}

type Intercept = Arc<dyn Fn(&mut Reply) -> Flow + Send + Sync>;

struct Step {
    task: String,
    target: SharedTransport,
    meta: Metadata,
    intercept: Option<Intercept>,
}

/// Steps of (task, target) run one after another: the initial data goes to the first step,
/// each step's value to the next, and the last step's reply is the result. An intercept
/// after a step may change the value, end the pipeline early, or fail it. A step that fails
/// ends the pipeline with its error. Reusable: [`execute`](Self::execute) can run again.
///
/// ```
/// use distio_patterns::{Flow, InProcess, Pipeline};
/// use distio_slave::TaskRegistry;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("add one", |n: u64, _| async move { Ok::<_, String>(n + 1) })?;
/// tasks.register("double", |n: u64, _| async move { Ok::<_, String>(n * 2) })?;
/// let worker = InProcess::new(0, tasks);
///
/// let pipeline = Pipeline::new()
///     .step("add one", worker.clone())
///     .intercept(|reply| {
///         let n: u64 = reply.value().unwrap_or(0);
///         if n > 100 { Flow::End } else { Flow::Continue }
///     })
///     .step("double", worker.clone());
/// assert_eq!(pipeline.execute(&4u64).await?.value::<u64>()?, 10);
/// assert_eq!(pipeline.execute(&500u64).await?.value::<u64>()?, 501); // ended early
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct Pipeline {
    steps: Vec<Step>,
    misuse: Option<&'static str>,
}

impl Pipeline {
    /// A pipeline with no steps.
    pub fn new() -> Self {
        Pipeline::default()
    }

    /// Appends a step running `task` on `target`.
    pub fn step<T: Transport + 'static>(self, task: impl Into<String>, target: T) -> Self {
        self.step_with_meta(task, target, Metadata::new())
    }

    /// Appends a step running `task` on `target` with `meta`.
    pub fn step_with_meta<T: Transport + 'static>(
        mut self,
        task: impl Into<String>,
        target: T,
        meta: Metadata,
    ) -> Self {
        self.steps.push(Step {
            task: task.into(),
            target: Arc::new(target),
            meta,
            intercept: None,
        });
        self
    }

    /// Sets the intercept run after the last step added so far.
    pub fn intercept(
        mut self,
        intercept: impl Fn(&mut Reply) -> Flow + Send + Sync + 'static,
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
            let mut reply = step
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
            if let Some(intercept) = &step.intercept {
                match intercept(&mut reply) {
                    Flow::Continue => {}
                    Flow::End => return Ok(reply),
                    Flow::Fail(message) => {
                        return Err(PatternError::Ended {
                            step: index,
                            message,
                        });
                    }
                }
            }
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
