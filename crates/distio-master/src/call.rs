//! Calling typed task contracts ([`distio_proto::Task`]).

use distio_proto::Task;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{Answer, Exec, ExecFuture, MasterError, Slave};

/// A call of the typed task `T` on one slave; `.await` it for the task's own
/// `Result<T::Output, T::Error>`, inside the `Result` of everything around it (the slave
/// unreachable, a timeout, an unknown task: [`MasterError`]).
///
/// Made by [`Slave::call`]. Like [`Exec`], it is sent when first polled.
#[must_use = "a call is sent when it is awaited"]
pub struct Call<T: Task> {
    exec: Exec,
    task: PhantomData<fn() -> T>,
}

impl<T: Task> std::fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("task", &T::NAME).finish()
    }
}

impl Slave {
    /// Calls the typed task `T` with `input`. The input, the output and the error are the
    /// types `T` declares, checked at compile time; the slave must implement `T`
    /// (`SlaveProcess::implement::<T>` in `distio-slave`).
    ///
    /// ```no_run
    /// use distio_proto::Task;
    ///
    /// struct Square;
    /// impl Task for Square {
    ///     const NAME: &'static str = "square";
    ///     type Input = u32;
    ///     type Output = u64;
    ///     type Error = ();
    /// }
    ///
    /// # async fn demo(slave: distio_master::Slave) -> Result<(), distio_master::MasterError> {
    /// let squared: Result<u64, ()> = slave.call::<Square>(&12).await?;
    /// assert_eq!(squared, Ok(144));
    /// # Ok(()) }
    /// ```
    ///
    /// Input of another type is refused by the compiler:
    ///
    /// ```compile_fail
    /// # use distio_proto::Task;
    /// # struct Square;
    /// # impl Task for Square {
    /// #     const NAME: &'static str = "square";
    /// #     type Input = u32;
    /// #     type Output = u64;
    /// #     type Error = ();
    /// # }
    /// # async fn demo(slave: distio_master::Slave) {
    /// let _ = slave.call::<Square>(&"twelve").await;
    /// # }
    /// ```
    pub fn call<T: Task>(&self, input: &T::Input) -> Call<T> {
        Call {
            exec: self.exec(T::NAME, input),
            task: PhantomData,
        }
    }
}

impl<T: Task> Call<T> {
    /// Sets this call's timeout (overrides the slave's and the master's defaults); see
    /// [`Exec::timeout`](crate::Exec::timeout).
    pub fn timeout(mut self, timeout: impl Into<crate::Timeout>) -> Self {
        self.exec = self.exec.timeout(timeout);
        self
    }
}

impl<T: Task> IntoFuture for Call<T> {
    type Output = Result<Result<T::Output, T::Error>, MasterError>;
    type IntoFuture = CallFuture<T>;

    fn into_future(self) -> CallFuture<T> {
        CallFuture {
            // Failures around the task always come back as `Err`, whatever the defaults.
            inner: self.exec.catch_all(true).into_future(),
            task: PhantomData,
        }
    }
}

/// The future of a [`Call`].
#[must_use = "a call is sent when it is polled"]
pub struct CallFuture<T: Task> {
    inner: ExecFuture,
    task: PhantomData<fn() -> T>,
}

impl<T: Task> std::fmt::Debug for CallFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallFuture")
            .field("task", &T::NAME)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: Task> Future for CallFuture<T> {
    type Output = Result<Result<T::Output, T::Error>, MasterError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll(cx)
            .map(|response| response?.value::<Result<T::Output, T::Error>>())
    }
}
