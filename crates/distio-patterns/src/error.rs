//! The one error type of this crate.

use distio_master::MasterError;
use distio_proto::{ProtoError, TaskError};

/// What can go wrong building or running a pattern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern was given no slaves (transports) to send work to.
    #[error("the {pattern} has no slaves to send work to; give it at least one")]
    NoTransports {
        /// Which pattern.
        pattern: &'static str,
    },

    /// The pattern has nothing to do.
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

    /// A pipeline intercept ended the pipeline with an error.
    #[error("the pipeline was ended after step {step}: {message}")]
    Ended {
        /// The step after which it ended, from 0.
        step: usize,
        /// The intercept's reason.
        message: String,
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
