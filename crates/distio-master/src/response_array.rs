//! The responses of a request sent to several slaves.

use std::ops::{Deref, DerefMut};

use crate::{Answer, Answers, Order, Response};

/// A response field to sort by; see [`ResponseArray::sort_by`].
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
    /// [`Response::duration`].
    Duration,
}

/// Responses from several slaves, in the order the slaves were asked. Derefs to
/// `[Response]`, so indexing, `len` and iteration work as on a slice.
///
/// The helpers over the values ([`values`](Answers::values), [`sum`](Answers::sum),
/// [`join_strings`](Answers::join_strings), [`sort_by_value`](Answers::sort_by_value), …)
/// come from the [`Answers`] trait, shared with `distio_patterns::Replies`; they skip error
/// responses, which [`errors`](Answers::errors) lists.
///
/// ```no_run
/// use distio_master::prelude::*;
/// # async fn demo(master: distio_master::Master) -> Result<(), distio_master::MasterError> {
/// let responses = master.tell(master.all()).to("square", &3u64).await?;
/// let total: u64 = responses.sum()?;
/// println!("{} answers, total {total}, {} errors", responses.len(), responses.errors().len());
/// println!("{}", responses.join_values::<u64>(", ")?);
/// println!("mean time {:?}", responses.average_response_time());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ResponseArray(Vec<Response>);

impl ResponseArray {
    /// An empty array.
    pub fn new() -> Self {
        ResponseArray(Vec::new())
    }

    /// Sorts by a response field (stable: equal entries keep their order).
    ///
    /// ```
    /// use distio_master::{Order, ResponseArray, ResponseField};
    /// let mut responses = ResponseArray::new();
    /// responses.sort_by(ResponseField::Duration, Order::Descending);
    /// assert!(responses.is_empty());
    /// ```
    pub fn sort_by(&mut self, field: ResponseField, order: Order) -> &mut Self {
        self.sort_with(order, |a, b| match field {
            ResponseField::SlaveId => a.slave_id().cmp(&b.slave_id()),
            ResponseField::RequestId => a.request_id().cmp(&b.request_id()),
            ResponseField::Task => a.task().cmp(b.task()),
            ResponseField::SentAt => a.sent_at().cmp(&b.sent_at()),
            ResponseField::ReceivedAt => a.received_at().cmp(&b.received_at()),
            ResponseField::Duration => a.duration().cmp(&b.duration()),
        })
    }

    /// The responses as a vector.
    pub fn into_vec(self) -> Vec<Response> {
        self.0
    }

    /// Appends a response.
    pub fn push(&mut self, response: Response) {
        self.0.push(response);
    }
}

impl Answers for ResponseArray {
    type Item = Response;
    fn answers(&self) -> &[Response] {
        &self.0
    }
    fn answers_mut(&mut self) -> &mut Vec<Response> {
        &mut self.0
    }
}

impl Deref for ResponseArray {
    type Target = [Response];
    fn deref(&self) -> &[Response] {
        &self.0
    }
}

impl DerefMut for ResponseArray {
    fn deref_mut(&mut self) -> &mut [Response] {
        &mut self.0
    }
}

impl From<Vec<Response>> for ResponseArray {
    fn from(responses: Vec<Response>) -> Self {
        ResponseArray(responses)
    }
}

impl FromIterator<Response> for ResponseArray {
    fn from_iter<I: IntoIterator<Item = Response>>(iter: I) -> Self {
        ResponseArray(iter.into_iter().collect())
    }
}

impl IntoIterator for ResponseArray {
    type Item = Response;
    type IntoIter = std::vec::IntoIter<Response>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ResponseArray {
    type Item = &'a Response;
    type IntoIter = std::slice::Iter<'a, Response>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
