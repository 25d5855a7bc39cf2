//! What a transport returns for one task.

use distio_master::{Answer, Answers};
use distio_proto::{Payload, ProtoError, TaskError};
use serde::Serialize;
use std::cmp::Ordering;
use std::time::Duration;

use crate::PatternError;

/// The outcome of one task sent through a [`Transport`](crate::Transport).
///
/// The value helpers ([`value`](Answer::value), [`error`](Answer::error),
/// [`is_ok`](Answer::is_ok), [`duration`](Answer::duration), …) come from the [`Answer`]
/// trait, the same ones as `distio_master::Response`'s.
///
/// ```
/// use distio_patterns::prelude::*;
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

    /// The same reply with `value` in place of its value or error; the way a pipeline
    /// [`Intercept`](crate::Intercept) hands on a changed value.
    ///
    /// ```
    /// use distio_patterns::prelude::*;
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
}

impl Answer for Reply {
    type Error = PatternError;

    fn outcome(&self) -> &Result<Payload, TaskError> {
        &self.outcome
    }

    fn duration(&self) -> Duration {
        self.duration
    }

    fn task_error(&self, error: TaskError) -> PatternError {
        PatternError::Task {
            source_name: self.source_name.clone(),
            task: self.task.clone(),
            error,
        }
    }

    fn decode_error(error: ProtoError) -> PatternError {
        PatternError::Decode(error)
    }

    type Field = ReplyField;

    fn compare_field(&self, other: &Self, field: ReplyField) -> Ordering {
        match field {
            ReplyField::Source => self.source.cmp(&other.source),
            ReplyField::Task => self.task.cmp(&other.task),
            ReplyField::Duration => self.duration.cmp(&other.duration),
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

/// A reply field to sort by; see [`Answers::sort_by`].
///
/// ```
/// use distio_patterns::prelude::*;
/// use distio_patterns::{ReplyField, Reply};
/// use distio_proto::Payload;
/// use std::time::Duration;
///
/// let mut replies: Replies = [2u64, 1]
///     .into_iter()
///     .map(|n| Reply::new(n, "t", "n", Ok(Payload::encode(&n).unwrap()), Duration::ZERO))
///     .collect();
/// replies.sort_by(ReplyField::Source, Order::Ascending);
/// assert_eq!(replies.values::<u64>()?, vec![1, 2]);
/// # Ok::<(), distio_patterns::PatternError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyField {
    /// [`Reply::source`].
    Source,
    /// [`Reply::task`].
    Task,
    /// [`Reply::duration`](Answer::duration).
    Duration,
}

/// Several replies, in the order of the work that produced them: what every pattern
/// resolves to.
///
/// It is `distio_master`'s [`Answers`] collection of [`Reply`]s, the same type as
/// `distio_master::ResponseArray` but for the item, so it has the same helpers, written
/// once: [`values`](Answers::values), [`sum`](Answers::sum),
/// [`product`](Answers::product), [`join_values`](Answers::join_values),
/// [`sort_by`](Answers::sort_by) with a [`ReplyField`],
/// [`sort_by_value`](Answers::sort_by_value),
/// [`average_response_time`](Answers::average_response_time), …. Derefs to `[Reply]`.
///
/// ```
/// use distio_patterns::prelude::*;
/// use distio_patterns::Reply;
/// use distio_proto::Payload;
/// use std::time::Duration;
///
/// let replies: Replies = (1..=3u64)
///     .map(|n| Reply::new(0, "t", "n", Ok(Payload::encode(&n).unwrap()), Duration::ZERO))
///     .collect();
/// assert_eq!(replies.sum::<u64>()?, 6);
/// assert_eq!(replies.product::<u64>()?, 6);
/// assert_eq!(replies.join_values::<u64>("+")?, "1+2+3");
/// assert!(replies.errors().is_empty());
/// # Ok::<(), distio_patterns::PatternError>(())
/// ```
pub type Replies = Answers<Reply>;

#[cfg(test)]
mod tests {
    use super::*;
    use distio_master::Order;
    use distio_proto::ErrorKind;

    fn reply(source: u64, value: Result<u64, &str>, millis: u64) -> Reply {
        let outcome = match value {
            Ok(n) => Ok(Payload::encode(&n).unwrap()),
            Err(message) => Err(TaskError::new(ErrorKind::HandlerFailed, message)),
        };
        Reply::new(source, "t", "n", outcome, Duration::from_millis(millis))
    }

    #[test]
    fn replies_have_the_response_array_helpers() {
        let mut replies: Replies = vec![
            reply(0, Ok(3), 10),
            reply(1, Err("no"), 20),
            reply(2, Ok(1), 30),
            reply(3, Ok(2), 40),
        ]
        .into();
        assert_eq!(replies.product::<u64>().unwrap(), 6);
        assert_eq!(replies.join_values::<u64>(", ").unwrap(), "3, 1, 2");
        assert_eq!(
            replies.average_response_time(),
            Some(Duration::from_millis(25))
        );
        assert_eq!(replies.errors().len(), 1);

        replies.sort_by_value::<u64>(Order::Descending).unwrap();
        let order: Vec<u64> = replies.iter().map(Reply::source).collect();
        assert_eq!(order, vec![0, 3, 2, 1], "errors go last");

        replies.sort_by(ReplyField::Duration, Order::Ascending);
        let order: Vec<u64> = replies.iter().map(Reply::source).collect();
        assert_eq!(order, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_value_that_does_not_decode_leaves_the_replies_as_they_were() {
        let mut replies: Replies = vec![reply(0, Ok(3), 0), reply(1, Ok(1), 0)].into();
        assert!(matches!(
            replies.sort_by_value::<String>(Order::Ascending),
            Err(PatternError::Decode(_))
        ));
        let order: Vec<u64> = replies.iter().map(Reply::source).collect();
        assert_eq!(order, vec![0, 1]);
        assert!(matches!(
            replies.join_strings(""),
            Err(PatternError::Decode(_))
        ));
    }
}
