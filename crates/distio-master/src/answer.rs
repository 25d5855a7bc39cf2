//! One set of helpers for answers, shared by every crate that has them.
//!
//! [`Answer`] is one answer (a value or a [`TaskError`]); [`Answers`] is the one collection
//! of them. The master's [`Response`](crate::Response) and `distio_patterns::Reply`
//! implement [`Answer`]; [`ResponseArray`](crate::ResponseArray) is `Answers<Response>` and
//! `distio_patterns::Replies` is `Answers<Reply>`. The helpers are written once, here, and
//! each answer type only says where its outcome is, which error type it reports in and how
//! its fields compare.

use distio_proto::{Payload, ProtoError, TaskError};
use serde::de::DeserializeOwned;
use std::cmp::Ordering;
use std::fmt::Display;
use std::iter::{Product, Sum};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// Sort direction.
///
/// ```
/// use distio_master::Order;
/// assert_eq!(Order::default(), Order::Ascending);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Smallest first.
    #[default]
    Ascending,
    /// Largest first.
    Descending,
}

impl Order {
    /// `ordering` in this direction: as it is for [`Ascending`](Order::Ascending),
    /// reversed for [`Descending`](Order::Descending).
    ///
    /// ```
    /// use distio_master::Order;
    /// use std::cmp::Ordering;
    /// assert_eq!(Order::Descending.apply(Ordering::Less), Ordering::Greater);
    /// ```
    pub fn apply(self, ordering: Ordering) -> Ordering {
        match self {
            Order::Ascending => ordering,
            Order::Descending => ordering.reverse(),
        }
    }
}

/// One answer to a task: a value or an error, and how long it took.
///
/// An implementor says where its outcome is, how long it took, how a failure becomes its
/// crate's error type and how its fields compare; the helpers ([`value`](Self::value),
/// [`payload`](Self::payload), [`error`](Self::error), [`is_ok`](Self::is_ok)) come with the
/// trait, and a collection of answers is an [`Answers`].
///
/// These are trait methods rather than inherent ones so that there is one copy of them for
/// every answer type of every crate. To call them, bring the trait into scope, most simply
/// with the prelude: `use distio_master::prelude::*;` (or `distio_patterns::prelude::*`).
///
/// ```no_run
/// use distio_master::prelude::*;
/// # async fn demo(slave: distio_master::Slave) -> Result<(), distio_master::MasterError> {
/// let response = slave.exec("square", &9u64).await?;
/// if response.is_ok() {
///     let n: u64 = response.value()?;
///     println!("{n} in {:?}", response.duration());
/// }
/// # Ok(()) }
/// ```
pub trait Answer {
    /// The error [`value`](Self::value) reports: the implementor's crate error.
    type Error;

    /// The value or the error.
    fn outcome(&self) -> &Result<Payload, TaskError>;

    /// How long the task took.
    fn duration(&self) -> Duration;

    /// `error` (this answer's failure) as [`Self::Error`], naming who failed and how.
    fn task_error(&self, error: TaskError) -> Self::Error;

    /// A value that could not be decoded, as [`Self::Error`].
    fn decode_error(error: ProtoError) -> Self::Error;

    /// The fields [`Answers::sort_by`] sorts by, such as
    /// [`ResponseField`](crate::ResponseField).
    type Field: Copy;

    /// How this answer compares with `other` by `field`, smallest first.
    fn compare_field(&self, other: &Self, field: Self::Field) -> Ordering;

    /// The value, decoded as `T` (usually inferred: `let n: u64 = answer.value()?`); an
    /// error answer gives its [`task_error`](Self::task_error).
    ///
    /// The encoding carries no types, so this is checked only as far as the bytes go:
    /// decoding as a type of the same size as the one the slave sent (an `f64` read as a
    /// `u64`) succeeds with a meaningless value. Declare the task as a
    /// [`Task`](crate::Task) contract and use [`Slave::call`](crate::Slave::call) to have
    /// the compiler check both sides instead.
    fn value<T: DeserializeOwned>(&self) -> Result<T, Self::Error> {
        match self.outcome() {
            Ok(payload) => payload.decode().map_err(Self::decode_error),
            Err(error) => Err(self.task_error(error.clone())),
        }
    }

    /// The value's encoded bytes, unless the task failed.
    fn payload(&self) -> Option<&Payload> {
        self.outcome().as_ref().ok()
    }

    /// The error, if the task failed.
    fn error(&self) -> Option<&TaskError> {
        self.outcome().as_ref().err()
    }

    /// True if the task produced a value.
    fn is_ok(&self) -> bool {
        self.outcome().is_ok()
    }
}

/// Answers in order: the responses of a broadcast ([`ResponseArray`](crate::ResponseArray)
/// is `Answers<Response>`), the replies of a pattern (`distio_patterns::Replies` is
/// `Answers<Reply>`), or any other [`Answer`]s.
///
/// Derefs to a slice, so indexing, `len` and iteration work as on one. The helpers over the
/// values ([`values`](Self::values), [`sum`](Self::sum), [`product`](Self::product),
/// [`join_values`](Self::join_values), [`sort_by_value`](Self::sort_by_value), …) use the
/// answers that carry a value and skip the failed ones; [`errors`](Self::errors) lists
/// those. They are inherent methods: no trait import is needed.
///
/// ```no_run
/// use distio_master::prelude::*;
/// # async fn demo(master: distio_master::Master) -> Result<(), distio_master::MasterError> {
/// let mut responses = master.tell(master.all()).to("square", &3u64).await?;
/// let total: u64 = responses.sum()?;
/// println!("{} answers, total {total}, {} errors", responses.len(), responses.errors().len());
/// responses.sort_by_value::<u64>(Order::Descending)?;
/// println!("{}", responses.join_values::<u64>(", ")?);
/// println!("mean time {:?}", responses.average_response_time());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answers<A>(Vec<A>);

impl<A> Answers<A> {
    /// No answers.
    ///
    /// ```
    /// use distio_master::ResponseArray;
    /// assert!(ResponseArray::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Answers(Vec::new())
    }

    /// Appends an answer.
    pub fn push(&mut self, answer: A) {
        self.0.push(answer);
    }

    /// The answers as a vector.
    pub fn into_vec(self) -> Vec<A> {
        self.0
    }
}

impl<A: Answer> Answers<A> {
    /// The values of the successful answers, decoded as `T`, in order.
    pub fn values<T: DeserializeOwned>(&self) -> Result<Vec<T>, A::Error> {
        self.0
            .iter()
            .filter_map(Answer::payload)
            .map(|p| p.decode().map_err(A::decode_error))
            .collect()
    }

    /// The errors of the failed answers.
    pub fn errors(&self) -> Vec<&TaskError> {
        self.0.iter().filter_map(Answer::error).collect()
    }

    /// The values, decoded as `T`, formatted and joined with `glue`.
    /// For string values, [`join_strings`](Self::join_strings) needs no type.
    pub fn join_values<T: DeserializeOwned + Display>(
        &self,
        glue: &str,
    ) -> Result<String, A::Error> {
        let values = self.values::<T>()?;
        Ok(values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(glue))
    }

    /// The values, which are strings, joined with `glue`.
    pub fn join_strings(&self, glue: &str) -> Result<String, A::Error> {
        Ok(self.values::<String>()?.join(glue))
    }

    /// The sum of the values (usually inferred: `let total: u64 = answers.sum()?`).
    pub fn sum<T: DeserializeOwned + Sum<T>>(&self) -> Result<T, A::Error> {
        Ok(self.values::<T>()?.into_iter().sum())
    }

    /// The product of the values.
    pub fn product<T: DeserializeOwned + Product<T>>(&self) -> Result<T, A::Error> {
        Ok(self.values::<T>()?.into_iter().product())
    }

    /// The mean time the answers took, or `None` when there are none.
    pub fn average_response_time(&self) -> Option<Duration> {
        let count = u32::try_from(self.0.len()).ok().filter(|&n| n > 0)?;
        Some(self.0.iter().map(Answer::duration).sum::<Duration>() / count)
    }

    /// Sorts by one of the answers' fields (stable: equal answers keep their order).
    ///
    /// ```
    /// use distio_master::{Order, ResponseArray, ResponseField};
    /// let mut responses = ResponseArray::new();
    /// responses.sort_by(ResponseField::Duration, Order::Descending);
    /// assert!(responses.is_empty());
    /// ```
    pub fn sort_by(&mut self, field: A::Field, order: Order) -> &mut Self {
        self.sort_with(order, |a, b| a.compare_field(b, field))
    }

    /// Sorts with `compare` in `order` (stable: equal answers keep their order).
    pub fn sort_with(
        &mut self,
        order: Order,
        mut compare: impl FnMut(&A, &A) -> Ordering,
    ) -> &mut Self {
        self.0.sort_by(|a, b| order.apply(compare(a, b)));
        self
    }

    /// Sorts by value decoded as `T`; failed answers go last in either order. A value that
    /// does not decode leaves the answers as they were.
    pub fn sort_by_value<T: DeserializeOwned + PartialOrd>(
        &mut self,
        order: Order,
    ) -> Result<&mut Self, A::Error> {
        let keys = self
            .0
            .iter()
            .map(|answer| answer.payload().map(|p| p.decode::<T>()).transpose())
            .collect::<Result<Vec<Option<T>>, _>>()
            .map_err(A::decode_error)?;
        let mut keyed: Vec<(Option<T>, A)> = keys.into_iter().zip(self.0.drain(..)).collect();
        keyed.sort_by(|(a, _), (b, _)| match (a, b) {
            (Some(a), Some(b)) => order.apply(a.partial_cmp(b).unwrap_or(Ordering::Equal)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        });
        self.0.extend(keyed.into_iter().map(|(_, answer)| answer));
        Ok(self)
    }
}

impl<A> Default for Answers<A> {
    fn default() -> Self {
        Answers::new()
    }
}

impl<A> Deref for Answers<A> {
    type Target = [A];
    fn deref(&self) -> &[A] {
        &self.0
    }
}

impl<A> DerefMut for Answers<A> {
    fn deref_mut(&mut self) -> &mut [A] {
        &mut self.0
    }
}

impl<A> From<Vec<A>> for Answers<A> {
    fn from(answers: Vec<A>) -> Self {
        Answers(answers)
    }
}

impl<A> From<Answers<A>> for Vec<A> {
    fn from(answers: Answers<A>) -> Self {
        answers.0
    }
}

impl<A> FromIterator<A> for Answers<A> {
    fn from_iter<I: IntoIterator<Item = A>>(iter: I) -> Self {
        Answers(iter.into_iter().collect())
    }
}

impl<A> Extend<A> for Answers<A> {
    fn extend<I: IntoIterator<Item = A>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl<A> IntoIterator for Answers<A> {
    type Item = A;
    type IntoIter = std::vec::IntoIter<A>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, A> IntoIterator for &'a Answers<A> {
    type Item = &'a A;
    type IntoIter = std::slice::Iter<'a, A>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
