//! What a transport returns for one task.

use distio_proto::{Payload, TaskError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::iter::Sum;
use std::ops::Deref;
use std::time::Duration;

use crate::PatternError;

/// The outcome of one task sent through a [`Transport`](crate::Transport).
///
/// ```
/// use distio_patterns::Reply;
/// use distio_proto::Payload;
/// use std::time::Duration;
///
/// let reply = Reply::new(3, "slave #3", "square", Ok(Payload::encode(&81u64)?), Duration::ZERO);
/// assert_eq!(reply.value::<u64>()?, 81);
/// assert_eq!(reply.source(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Reply {
    source: u64,
    source_name: String,
    task: String,
    outcome: Result<Payload, TaskError>,
    duration: Duration,
}

impl Reply {
    /// A reply from transport `source` (named `source_name`) for `task`.
    pub fn new(
        source: u64,
        source_name: impl Into<String>,
        task: impl Into<String>,
        outcome: Result<Payload, TaskError>,
        duration: Duration,
    ) -> Self {
        Reply {
            source,
            source_name: source_name.into(),
            task: task.into(),
            outcome,
            duration,
        }
    }

    /// The id of the transport that answered.
    pub fn source(&self) -> u64 {
        self.source
    }

    /// The name of the transport that answered, for messages.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The task that ran.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The value decoded as `T`; an error reply gives [`PatternError::Task`].
    pub fn value<T: DeserializeOwned>(&self) -> Result<T, PatternError> {
        match &self.outcome {
            Ok(payload) => payload.decode().map_err(PatternError::Decode),
            Err(error) => Err(self.task_error(error.clone())),
        }
    }

    /// The value's bytes, unless the task failed.
    pub fn payload(&self) -> Option<&Payload> {
        self.outcome.as_ref().ok()
    }

    /// The error, if the task failed.
    pub fn error(&self) -> Option<&TaskError> {
        self.outcome.as_ref().err()
    }

    /// True if the task produced a value.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The value or error.
    pub fn outcome(&self) -> &Result<Payload, TaskError> {
        &self.outcome
    }

    /// How long the task took, as the transport measured it.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The same reply with `value` in place of its value or error; the way a pipeline
    /// [`Intercept`](crate::Intercept) hands on a changed value.
    ///
    /// ```
    /// use distio_patterns::Reply;
    /// use distio_proto::Payload;
    /// use std::time::Duration;
    ///
    /// let reply = Reply::new(0, "t", "square", Ok(Payload::encode(&9u64)?), Duration::ZERO);
    /// let changed = reply.with_value("nine")?;
    /// assert_eq!(changed.value::<String>()?, "nine");
    /// assert_eq!(changed.task(), "square");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_value<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, PatternError> {
        self.set_value(value)?;
        Ok(self)
    }

    /// Replaces the value (or error) in place.
    pub fn set_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), PatternError> {
        self.outcome = Ok(Payload::encode(value).map_err(PatternError::Encode)?);
        Ok(())
    }

    /// Replaces the value or error.
    pub fn set_outcome(&mut self, outcome: Result<Payload, TaskError>) {
        self.outcome = outcome;
    }

    pub(crate) fn task_error(&self, error: TaskError) -> PatternError {
        PatternError::Task {
            source_name: self.source_name.clone(),
            task: self.task.clone(),
            error,
        }
    }
}

impl From<distio_master::Response> for Reply {
    fn from(response: distio_master::Response) -> Self {
        Reply {
            source: response.slave_id(),
            source_name: response.slave().to_string(),
            task: response.task().to_owned(),
            duration: response.duration(),
            outcome: response.outcome().clone(),
        }
    }
}

/// Several replies, in the order of the work that produced them. Derefs to `[Reply]`.
///
/// ```
/// use distio_patterns::{Replies, Reply};
/// use distio_proto::Payload;
/// use std::time::Duration;
///
/// let replies: Replies = (1..=3u64)
///     .map(|n| Reply::new(0, "t", "n", Ok(Payload::encode(&n).unwrap()), Duration::ZERO))
///     .collect();
/// assert_eq!(replies.sum::<u64>()?, 6);
/// assert!(replies.errors().is_empty());
/// # Ok::<(), distio_patterns::PatternError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Replies(Vec<Reply>);

impl Replies {
    /// The values of the successful replies, decoded as `T`, in order.
    pub fn values<T: DeserializeOwned>(&self) -> Result<Vec<T>, PatternError> {
        self.0
            .iter()
            .filter_map(Reply::payload)
            .map(|p| p.decode().map_err(PatternError::Decode))
            .collect()
    }

    /// The errors of the failed replies.
    pub fn errors(&self) -> Vec<&TaskError> {
        self.0.iter().filter_map(Reply::error).collect()
    }

    /// The sum of the values.
    pub fn sum<T: DeserializeOwned + Sum<T>>(&self) -> Result<T, PatternError> {
        Ok(self.values::<T>()?.into_iter().sum())
    }

    /// Appends a reply.
    pub fn push(&mut self, reply: Reply) {
        self.0.push(reply);
    }

    /// The replies as a vector.
    pub fn into_vec(self) -> Vec<Reply> {
        self.0
    }
}

impl Deref for Replies {
    type Target = [Reply];
    fn deref(&self) -> &[Reply] {
        &self.0
    }
}

impl From<Vec<Reply>> for Replies {
    fn from(replies: Vec<Reply>) -> Self {
        Replies(replies)
    }
}

impl FromIterator<Reply> for Replies {
    fn from_iter<I: IntoIterator<Item = Reply>>(iter: I) -> Self {
        Replies(iter.into_iter().collect())
    }
}

impl IntoIterator for Replies {
    type Item = Reply;
    type IntoIter = std::vec::IntoIter<Reply>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
