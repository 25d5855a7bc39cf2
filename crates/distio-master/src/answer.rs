//! One set of helpers for answers, shared by every crate that has them.
//!
//! [`Answer`] is one answer (a value or a [`TaskError`]), [`Answers`] a collection of them.
//! The master's [`Response`](crate::Response) and [`ResponseArray`](crate::ResponseArray)
//! implement them, and so do `distio_patterns::Reply` and `distio_patterns::Replies`: the
//! helpers are written once, here, and each type only says where its outcome is and which
//! error type it reports in.

use distio_proto::{Payload, ProtoError, TaskError};
use serde::de::DeserializeOwned;
use std::cmp::Ordering;
use std::fmt::Display;
use std::iter::{Product, Sum};
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
/// An implementor says where its outcome is, how long it took and how a failure becomes its
/// crate's error type; the helpers ([`value`](Self::value), [`payload`](Self::payload),
/// [`error`](Self::error), [`is_ok`](Self::is_ok)) come with the trait.
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

/// The error type of the answers in `A`.
type ErrorOf<A> = <<A as Answers>::Item as Answer>::Error;

/// A collection of [`Answer`]s, in order.
///
/// An implementor gives access to its items; the helpers come with the trait. The value
/// helpers ([`values`](Self::values), [`sum`](Self::sum), …) use the answers that carry a
/// value and skip the failed ones; [`errors`](Self::errors) lists those. As with
/// [`Answer`], bring the trait into scope with `use distio_master::prelude::*;`.
///
/// ```no_run
/// use distio_master::prelude::*;
/// # async fn demo(master: distio_master::Master) -> Result<(), distio_master::MasterError> {
/// let mut responses = master.tell(master.all()).to("square", &3u64).await?;
/// let total: u64 = responses.sum()?;
/// println!("{} answers, total {total}, {} errors", responses.len(), responses.errors().len());
/// responses.sort_by_value::<u64>(Order::Descending)?;
/// println!("{}", responses.join_values::<u64>(", ")?);
/// # Ok(()) }
/// ```
pub trait Answers {
    /// One answer.
    type Item: Answer;

    /// The answers, in order.
    fn answers(&self) -> &[Self::Item];

    /// The answers, to reorder or change.
    fn answers_mut(&mut self) -> &mut Vec<Self::Item>;

    /// The values of the successful answers, decoded as `T`, in order.
    fn values<T: DeserializeOwned>(&self) -> Result<Vec<T>, ErrorOf<Self>> {
        self.answers()
            .iter()
            .filter_map(Answer::payload)
            .map(|p| p.decode().map_err(Self::Item::decode_error))
            .collect()
    }

    /// The errors of the failed answers.
    fn errors(&self) -> Vec<&TaskError> {
        self.answers().iter().filter_map(Answer::error).collect()
    }

    /// The values, decoded as `T`, formatted and joined with `glue`.
    /// For string values, [`join_strings`](Self::join_strings) needs no type.
    fn join_values<T: DeserializeOwned + Display>(
        &self,
        glue: &str,
    ) -> Result<String, ErrorOf<Self>> {
        let values = self.values::<T>()?;
        Ok(values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(glue))
    }

    /// The values, which are strings, joined with `glue`.
    fn join_strings(&self, glue: &str) -> Result<String, ErrorOf<Self>> {
        Ok(self.values::<String>()?.join(glue))
    }

    /// The sum of the values (usually inferred: `let total: u64 = answers.sum()?`).
    fn sum<T: DeserializeOwned + Sum<T>>(&self) -> Result<T, ErrorOf<Self>> {
        Ok(self.values::<T>()?.into_iter().sum())
    }

    /// The product of the values.
    fn product<T: DeserializeOwned + Product<T>>(&self) -> Result<T, ErrorOf<Self>> {
        Ok(self.values::<T>()?.into_iter().product())
    }

    /// The mean time the answers took, or `None` when there are none.
    fn average_response_time(&self) -> Option<Duration> {
        let answers = self.answers();
        let count = u32::try_from(answers.len()).ok().filter(|&n| n > 0)?;
        Some(answers.iter().map(Answer::duration).sum::<Duration>() / count)
    }

    /// Sorts with `compare` in `order` (stable: equal answers keep their order).
    fn sort_with(
        &mut self,
        order: Order,
        mut compare: impl FnMut(&Self::Item, &Self::Item) -> Ordering,
    ) -> &mut Self {
        self.answers_mut()
            .sort_by(|a, b| order.apply(compare(a, b)));
        self
    }

    /// Sorts by value decoded as `T`; failed answers go last in either order.
    fn sort_by_value<T: DeserializeOwned + PartialOrd>(
        &mut self,
        order: Order,
    ) -> Result<&mut Self, ErrorOf<Self>> {
        let keys = self
            .answers()
            .iter()
            .map(|answer| answer.payload().map(|p| p.decode::<T>()).transpose())
            .collect::<Result<Vec<Option<T>>, _>>()
            .map_err(Self::Item::decode_error)?;
        let mut positions: Vec<usize> = (0..keys.len()).collect();
        positions.sort_by(|&a, &b| match (&keys[a], &keys[b]) {
            (Some(a), Some(b)) => order.apply(a.partial_cmp(b).unwrap_or(Ordering::Equal)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        });
        let answers = self.answers_mut();
        let mut taken: Vec<Option<Self::Item>> = answers.drain(..).map(Some).collect();
        answers.extend(positions.into_iter().filter_map(|i| taken[i].take()));
        Ok(self)
    }
}
