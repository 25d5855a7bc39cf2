//! Implementing typed task contracts ([`distio_proto::Task`]).

use distio_proto::Task;
use std::future::Future;

use crate::{SlaveError, SlaveProcess, TaskContext, TaskFailure, TaskRegistry};

impl TaskRegistry {
    /// Registers `handler` as the implementation of the typed task `T`, under `T::NAME`.
    ///
    /// The handler takes `T::Input` and returns `Result<T::Output, T::Error>`; both arrive
    /// typed at a master that calls `Slave::call::<T>`. A handler of any other shape does
    /// not compile. A name can be registered once, typed or not.
    ///
    /// ```
    /// use distio_proto::Task;
    /// use distio_slave::TaskRegistry;
    ///
    /// struct Double;
    /// impl Task for Double {
    ///     const NAME: &'static str = "double";
    ///     type Input = u64;
    ///     type Output = u64;
    ///     type Error = String;
    /// }
    ///
    /// let mut tasks = TaskRegistry::new();
    /// tasks.implement::<Double, _, _>(|n, _ctx| async move {
    ///     n.checked_mul(2).ok_or_else(|| format!("{n} is too large to double"))
    /// })?;
    /// assert_eq!(tasks.names(), ["double"]);
    /// # Ok::<(), distio_slave::SlaveError>(())
    /// ```
    pub fn implement<T, F, Fut>(&mut self, handler: F) -> Result<&mut Self, SlaveError>
    where
        T: Task,
        F: Fn(T::Input, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T::Output, T::Error>> + Send + 'static,
    {
        // The handler's own outcome, success or typed failure, is the response's value.
        self.register(T::NAME, move |input: T::Input, ctx| {
            let run = handler(input, ctx);
            async move { Ok::<_, TaskFailure>(run.await) }
        })
    }
}

impl SlaveProcess {
    /// Implements the typed task `T`; see [`TaskRegistry::implement`].
    ///
    /// ```no_run
    /// use distio_proto::Task;
    /// use distio_slave::SlaveProcess;
    ///
    /// struct Square;
    /// impl Task for Square {
    ///     const NAME: &'static str = "square";
    ///     type Input = u32;
    ///     type Output = u64;
    ///     type Error = ();
    /// }
    ///
    /// # async fn run() -> Result<(), distio_slave::SlaveError> {
    /// SlaveProcess::new()
    ///     .implement::<Square, _, _>(|n, _ctx| async move { Ok(u64::from(n) * u64::from(n)) })
    ///     .serve()
    ///     .await
    /// # }
    /// ```
    #[must_use]
    pub fn implement<T, F, Fut>(self, handler: F) -> Self
    where
        T: Task,
        F: Fn(T::Input, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T::Output, T::Error>> + Send + 'static,
    {
        self.register_with(|tasks| tasks.implement::<T, F, Fut>(handler).map(drop))
    }
}
