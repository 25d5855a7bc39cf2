//! The one error type of this crate.

use distio_master::MasterError;
use distio_proto::{ProtoError, TaskError};

/// What can go wrong building or running a pattern.
///
/// ```
/// use distio_patterns::{InProcess, PatternError, Workpool};
///
/// let none: Vec<InProcess> = Vec::new();
/// let Err(err) = Workpool::new(&none) else { panic!("a pool needs transports") };
/// assert!(matches!(err, PatternError::NoTransports { pattern: "workpool" }));
/// assert_eq!(err.to_string(), "the workpool has no slaves to send work to; give it at least one");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern was given no slaves (transports) to send work to.
    #[error("the {pattern} has no slaves to send work to; give it at least one")]
    NoTransports {
        /// Which pattern.
        pattern: &'static str,
    },

    /// A parallel set with no tasks, or a pipeline with no steps, was run. (Having no data
    /// is not an error: a scatter with no items, `times(0)` and `run_all` over no items
    /// return no replies.)
    #[error("the {pattern} has no {what}; add some before running it")]
    Empty {
        /// Which pattern.
        pattern: &'static str,
        /// What is missing.
        what: &'static str,
    },

    /// A setting is out of range.
    #[error("invalid {pattern} setting: {reason}")]
    Invalid {
        /// Which pattern.
        pattern: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// Data could not be encoded.
    #[error("could not encode the task data: {0}")]
    Encode(#[source] ProtoError),

    /// A value could not be decoded into the type asked for.
    #[error("could not decode a result: {0}")]
    Decode(#[source] ProtoError),

    /// A task failed and the failure was to be returned as an error (catch-all).
    #[error("task \"{task}\" on {source_name} failed ({}): {}", error.kind, error.message)]
    Task {
        /// The transport that ran it.
        source_name: String,
        /// The task.
        task: String,
        /// What went wrong.
        error: TaskError,
    },

    /// A pipeline step failed, which ends the pipeline.
    #[error("pipeline step {step} (task \"{task}\") failed ({}): {}", error.kind, error.message)]
    Step {
        /// The step's position, from 0.
        step: usize,
        /// The step's task.
        task: String,
        /// What went wrong.
        error: TaskError,
    },

    /// A pipeline intercept failed the pipeline ([`Intercept::Fail`](crate::Intercept::Fail)).
    /// The intercept's error is kept as it was: match on `error` and `downcast_ref` it to
    /// your error type, or walk [`source`](std::error::Error::source).
    #[error("the intercept after pipeline step {step} failed the pipeline: {error}")]
    InterceptFailed {
        /// The step whose intercept failed, from 0.
        step: usize,
        /// The intercept's error.
        #[source]
        error: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// Every slave of a workpool has ended, so queued work cannot run.
    #[error("every slave in the workpool has ended; task \"{task}\" could not run")]
    PoolExhausted {
        /// The task that could not run.
        task: String,
    },

    /// A master-side failure outside any task (for slave transports).
    #[error(transparent)]
    Master(#[from] MasterError),
}
