//! Typed task contracts: a task declared once, shared by the slave that implements it and
//! the master that calls it, so that a mismatch of names or types fails to compile.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A task both sides agree on: its name, what goes in, what comes out, and how it fails.
///
/// Declare it once, in a crate (or module) the slave program and the master program
/// share. The slave implements it with `SlaveProcess::implement::<T>(handler)` (crate
/// `distio-slave`), whose handler must take `T::Input` and return
/// `Result<T::Output, T::Error>`; the master calls it with `Slave::call::<T>(&input)`
/// (crate `distio-master`), which takes a `&T::Input` and gives back
/// `Result<T::Output, T::Error>`. Passing or expecting anything else does not compile.
///
/// On the wire a typed task is an ordinary request named [`NAME`](Self::NAME) whose data is
/// `T::Input`; its response value is the handler's `Result<T::Output, T::Error>`, encoded as
/// one value. So the handler's own errors arrive typed, while failures around it (timeout,
/// unknown task, a panic, a lost slave) stay error responses.
///
/// ```
/// use distio_proto::Task;
/// use serde::{Deserialize, Serialize};
///
/// /// Integer square root; fails on negative input.
/// pub struct Sqrt;
///
/// #[derive(Debug, Serialize, Deserialize, PartialEq)]
/// pub enum SqrtError {
///     Negative(i64),
/// }
///
/// impl Task for Sqrt {
///     const NAME: &'static str = "sqrt";
///     type Input = i64;
///     type Output = u32;
///     type Error = SqrtError;
/// }
///
/// assert_eq!(Sqrt::NAME, "sqrt");
/// ```
pub trait Task: Send + Sync + 'static {
    /// The task's name on the wire; unique among a slave's tasks.
    const NAME: &'static str;
    /// The request's data.
    type Input: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What the task returns when it succeeds.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// How the task itself fails (use [`std::convert::Infallible`]-like enums with no
    /// variants, or `()`, for tasks that cannot).
    type Error: Serialize + DeserializeOwned + Send + 'static;
}
