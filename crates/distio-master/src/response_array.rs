//! The responses of a request sent to several slaves.

use distio_proto::TaskError;
use serde::de::DeserializeOwned;
use std::cmp::Ordering;
use std::fmt::Display;
use std::iter::{Product, Sum};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::{MasterError, Response};

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

/// Sort direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Smallest first.
    #[default]
    Ascending,
    /// Largest first.
    Descending,
}

impl Order {
    fn apply(self, ordering: Ordering) -> Ordering {
        match self {
            Order::Ascending => ordering,
            Order::Descending => ordering.reverse(),
        }
    }
}

/// Responses from several slaves, in the order the slaves were asked. Derefs to
/// `[Response]`, so indexing, `len` and iteration work as on a slice.
///
/// The value helpers ([`values`](Self::values), [`sum`](Self::sum), …) use the
/// responses that carry a value and skip error responses; [`errors`](Self::errors) lists
/// those.
///
/// ```no_run
/// # async fn demo(master: distio_master::Master) -> Result<(), distio_master::MasterError> {
/// let responses = master.tell(master.all()).to("square", &3u64).await?;
/// let total: u64 = responses.sum()?;
/// println!("{} answers, total {total}, {} errors", responses.len(), responses.errors().len());
/// println!("{}", responses.join_values::<u64>(", ")?);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ResponseArray(Vec<Response>);

impl ResponseArray {
    /// An empty array.
    pub fn new() -> Self {
        ResponseArray(Vec::new())
    }

    /// The values of the successful responses, decoded as `T`.
    pub fn values<T: DeserializeOwned>(&self) -> Result<Vec<T>, MasterError> {
        self.0
            .iter()
            .filter_map(|r| r.payload())
            .map(|p| p.decode().map_err(MasterError::Decode))
            .collect()
    }

    /// The errors of the failed responses.
    pub fn errors(&self) -> Vec<&TaskError> {
        self.0.iter().filter_map(Response::error).collect()
    }

    /// The values, formatted and joined with `glue`.
    pub fn join_values<T: DeserializeOwned + Display>(
        &self,
        glue: &str,
    ) -> Result<String, MasterError> {
        let values = self.values::<T>()?;
        Ok(values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(glue))
    }

    /// The sum of the values.
    pub fn sum<T: DeserializeOwned + Sum<T>>(&self) -> Result<T, MasterError> {
        Ok(self.values::<T>()?.into_iter().sum())
    }

    /// The product of the values.
    pub fn product<T: DeserializeOwned + Product<T>>(&self) -> Result<T, MasterError> {
        Ok(self.values::<T>()?.into_iter().product())
    }

    /// The mean time the responses took, or `None` for an empty array.
    pub fn average_response_time(&self) -> Option<Duration> {
        let count = u32::try_from(self.0.len()).ok().filter(|&n| n > 0)?;
        Some(self.0.iter().map(Response::duration).sum::<Duration>() / count)
    }

    /// Sorts by a response field (stable: equal entries keep their order).
    pub fn sort_by(&mut self, field: ResponseField, order: Order) -> &mut Self {
        self.0.sort_by(|a, b| {
            let ordering = match field {
                ResponseField::SlaveId => a.slave_id().cmp(&b.slave_id()),
                ResponseField::RequestId => a.request_id().cmp(&b.request_id()),
                ResponseField::Task => a.task().cmp(b.task()),
                ResponseField::SentAt => a.sent_at().cmp(&b.sent_at()),
                ResponseField::ReceivedAt => a.received_at().cmp(&b.received_at()),
                ResponseField::Duration => a.duration().cmp(&b.duration()),
            };
            order.apply(ordering)
        });
        self
    }

    /// Sorts by value decoded as `T`; error responses go last in either order.
    pub fn sort_by_value<T: DeserializeOwned + PartialOrd>(
        &mut self,
        order: Order,
    ) -> Result<&mut Self, MasterError> {
        let mut keyed = std::mem::take(&mut self.0)
            .into_iter()
            .map(|r| {
                let key = r
                    .payload()
                    .map(|p| p.decode::<T>())
                    .transpose()
                    .map_err(MasterError::Decode)?;
                Ok((key, r))
            })
            .collect::<Result<Vec<(Option<T>, Response)>, MasterError>>()?;
        keyed.sort_by(|(a, _), (b, _)| match (a, b) {
            (Some(a), Some(b)) => order.apply(a.partial_cmp(b).unwrap_or(Ordering::Equal)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        });
        self.0 = keyed.into_iter().map(|(_, r)| r).collect();
        Ok(self)
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
