//! The outcome of one request.

use distio_proto::{Payload, ProtoError, RequestId, SlaveId, TaskError};
use serde::Serialize;
use std::cmp::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use crate::{Answer, Answers, Broadcast, EndReason, Exec, MasterError, Slave, SlaveArray};

/// What came back for one request: the value or error, who sent it, and when.
///
/// The value helpers ([`value`](Answer::value), [`error`](Answer::error),
/// [`is_ok`](Answer::is_ok), [`duration`](Answer::duration), …) come from the [`Answer`]
/// trait, shared with `distio_patterns::Reply`.
///
/// ```no_run
/// use distio_master::prelude::*;
/// # async fn demo(slave: distio_master::Slave) -> Result<(), distio_master::MasterError> {
/// let response = slave.exec("square", &9u64).await?;
/// match response.error() {
///     None => println!("{} from slave #{}", response.value::<u64>()?, response.slave_id()),
///     Some(err) => println!("{} failed: {err}", response.task()),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Response {
    pub(crate) slave: Slave,
    pub(crate) request_id: RequestId,
    pub(crate) task: String,
    pub(crate) outcome: Result<Payload, TaskError>,
    /// Why the slave was stopped or gone, when the master failed the request for that.
    pub(crate) end: Option<EndReason>,
    /// When the request was sent (monotonic; wall-clock times are derived from it).
    pub(crate) started: Instant,
    pub(crate) duration: Duration,
}

impl Response {
    /// The id of the slave that answered.
    pub fn slave_id(&self) -> SlaveId {
        self.slave.id()
    }

    /// The slave that answered.
    pub fn slave(&self) -> &Slave {
        &self.slave
    }

    /// The id of the request this answers.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The task that was run.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// Why the request failed without an answer from the slave: the slave was closed,
    /// shut down or killed, exited, broke the protocol or disconnected (see [`EndReason`]).
    /// `None` for a value, an error the slave sent, or a timeout.
    ///
    /// The wire-level [`ErrorKind`](crate::ErrorKind) of such an error is only `Closed` or
    /// `SlaveExited`; this tells the cases apart.
    ///
    /// ```no_run
    /// use distio_master::EndReason;
    /// # async fn demo(slave: distio_master::Slave) -> Result<(), distio_master::MasterError> {
    /// let response = slave.exec("square", &9u64).await?;
    /// match response.end_reason() {
    ///     None => {}
    ///     Some(EndReason::Killed(signal)) => println!("we killed it with {signal}"),
    ///     Some(EndReason::ProtocolViolation(how)) => println!("a broken slave: {how}"),
    ///     Some(other) => println!("the slave {other}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.end.as_ref()
    }

    /// Replaces the value (as a pipeline step may before passing it on).
    pub fn set_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), MasterError> {
        self.outcome = Ok(Payload::encode(value).map_err(MasterError::Encode)?);
        self.end = None;
        Ok(())
    }

    /// Replaces the value or error (an error set here has no [`end_reason`](Self::end_reason)).
    pub fn set_outcome(&mut self, outcome: Result<Payload, TaskError>) {
        self.outcome = outcome;
        self.end = None;
    }

    /// When the request was sent.
    pub fn sent_at(&self) -> SystemTime {
        wall_clock(self.started)
    }

    /// When the response arrived.
    pub fn received_at(&self) -> SystemTime {
        wall_clock(self.started + self.duration)
    }

    /// Sends this response's value as the data of `task` to another slave:
    /// `response.pipe("next").to(&other).await`. The value is passed on as it is, without
    /// decoding or re-encoding; piping an error response gives that error.
    pub fn pipe(&self, task: impl Into<String>) -> Pipe {
        let payload = match &self.outcome {
            Ok(payload) => Ok(payload.clone()),
            Err(error) => Err(self.task_error(error.clone())),
        };
        Pipe {
            task: task.into(),
            payload,
        }
    }

    /// Turns an error response into `Err`, keeping a successful one.
    pub fn into_result(self) -> Result<Response, MasterError> {
        match &self.outcome {
            Ok(_) => Ok(self),
            Err(error) => Err(self.task_error(error.clone())),
        }
    }
}

impl Answer for Response {
    type Error = MasterError;

    fn outcome(&self) -> &Result<Payload, TaskError> {
        &self.outcome
    }

    fn duration(&self) -> Duration {
        self.duration
    }

    fn task_error(&self, error: TaskError) -> MasterError {
        MasterError::Task {
            slave: self.slave.id(),
            task: self.task.clone(),
            error,
            end: self.end.clone(),
        }
    }

    fn decode_error(error: ProtoError) -> MasterError {
        MasterError::Decode(error)
    }

    type Field = ResponseField;

    fn compare_field(&self, other: &Self, field: ResponseField) -> Ordering {
        match field {
            ResponseField::SlaveId => self.slave_id().cmp(&other.slave_id()),
            ResponseField::RequestId => self.request_id.cmp(&other.request_id),
            ResponseField::Task => self.task.cmp(&other.task),
            ResponseField::SentAt => self.started.cmp(&other.started),
            ResponseField::ReceivedAt => {
                (self.started + self.duration).cmp(&(other.started + other.duration))
            }
            ResponseField::Duration => self.duration.cmp(&other.duration),
        }
    }
}

/// A response field to sort by; see [`Answers::sort_by`].
///
/// ```
/// use distio_master::{Order, ResponseArray, ResponseField};
/// let mut responses = ResponseArray::new();
/// responses.sort_by(ResponseField::ReceivedAt, Order::Ascending);
/// assert!(responses.is_empty());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseField {
    /// [`Response::slave_id`].
    SlaveId,
    /// [`Response::request_id`].
    RequestId,
    /// [`Response::task`].
    Task,
    /// [`Response::sent_at`].
    SentAt,
    /// [`Response::received_at`].
    ReceivedAt,
    /// [`Response::duration`](Answer::duration).
    Duration,
}

/// Responses from several slaves, in the order the slaves were asked: what a broadcast
/// ([`Master::tell`](crate::Master::tell), [`SlaveArray::exec`]) resolves to.
///
/// It is the [`Answers`] collection of [`Response`]s, the same type as the patterns'
/// `Replies` but for the item: its helpers ([`values`](Answers::values),
/// [`sum`](Answers::sum), [`join_strings`](Answers::join_strings),
/// [`sort_by`](Answers::sort_by) with a [`ResponseField`], …) are [`Answers`]' own. They
/// skip error responses, which [`errors`](Answers::errors) lists.
///
/// ```no_run
/// use distio_master::prelude::*;
/// # async fn demo(master: distio_master::Master) -> Result<(), distio_master::MasterError> {
/// let mut responses: ResponseArray = master.tell(master.all()).to("square", &3u64).await?;
/// let total: u64 = responses.sum()?;
/// println!("{} answers, total {total}, {} errors", responses.len(), responses.errors().len());
/// responses.sort_by(ResponseField::Duration, Order::Descending);
/// println!("{}", responses.join_values::<u64>(", ")?);
/// # Ok(()) }
/// ```
pub type ResponseArray = Answers<Response>;

/// The wall-clock time of `at`. Requests read only the monotonic clock (twice); their
/// wall-clock times are derived from one reading of both clocks taken at first use.
fn wall_clock(at: Instant) -> SystemTime {
    static ANCHOR: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    let (instant, system) = *ANCHOR.get_or_init(|| (Instant::now(), SystemTime::now()));
    match at.checked_duration_since(instant) {
        Some(after) => system + after,
        None => system - instant.duration_since(at),
    }
}

/// A response's value on its way to another task; see [`Response::pipe`].
#[must_use = "call `to` to send the value on"]
#[derive(Debug)]
pub struct Pipe {
    task: String,
    payload: Result<Payload, MasterError>,
}

impl Pipe {
    /// Sends the value to `slave`.
    pub fn to(self, slave: &Slave) -> Exec {
        Exec::new(slave.clone(), self.task, self.payload)
    }

    /// Sends the value to every slave of `slaves`.
    pub fn to_all(self, slaves: &SlaveArray) -> Broadcast {
        Broadcast::new(Ok(slaves.to_vec()), self.task, self.payload)
    }
}
