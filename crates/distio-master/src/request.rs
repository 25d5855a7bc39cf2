//! Sending requests: to one slave ([`Exec`]) or to many at once ([`Broadcast`]).

use distio_proto::{Metadata, Payload};
use futures_util::future::{BoxFuture, join_all};
use std::future::IntoFuture;

#[cfg(doc)]
use crate::Answer; // for the doc link to `Response::error`
use crate::{ExecFuture, MasterError, Response, ResponseArray, Slave, Timeout};

macro_rules! metadata_setters {
    () => {
        /// Sets this request's timeout: a [`Duration`](std::time::Duration) (zero: times
        /// out at once, unsent), [`Timeout::Never`] (none, whatever the defaults) or
        /// [`Timeout::Inherit`] (the slave's, else the master's default: the default).
        pub fn timeout(mut self, timeout: impl Into<Timeout>) -> Self {
            self.timeout = timeout.into();
            self
        }

        /// Sets this request's catch-all flag: when on, an error response is returned as
        /// `Err(MasterError::Task)`. `None` inherits the slave's, else the master's default
        /// (the default).
        pub fn catch_all(mut self, catch_all: impl Into<Option<bool>>) -> Self {
            self.meta.catch_all = catch_all.into();
            self
        }

        /// Replaces this request's metadata with `meta` (the caller's copy is untouched).
        /// Its `timeout` becomes the request's: `Some(limit)` is [`Timeout::After`], `None`
        /// [`Timeout::Inherit`].
        pub fn meta(mut self, meta: Metadata) -> Self {
            self.timeout = meta.timeout.map_or(Timeout::Inherit, Timeout::After);
            self.meta = meta;
            self
        }
    };
}

/// A request to one slave, not yet sent: `.await` it to send it and get the [`Response`].
///
/// Made by [`Slave::exec`]. An `Exec` is **lazy**, like any Rust future: nothing is sent
/// until it is first polled — awaited, or turned into an [`ExecFuture`] (with
/// [`send`](Self::send) or [`IntoFuture`]) and polled, say by `tokio::spawn` or `join!`.
/// Its request id, its effective timeout and catch-all (from the slave's and the master's
/// defaults as they are then) and the start of its timeout are all fixed at that first
/// poll. An `Exec` dropped unpolled sends nothing. To run several requests at once, create
/// them all and await them together (`futures::future::join_all`, `tokio::join!`), or
/// spawn each one.
///
/// Without catch-all, an error the slave (or the link, or a timeout) produced comes back
/// as `Ok(response)` with [`Response::error`] set; with catch-all it comes back as
/// `Err(MasterError::Task)`.
///
/// ```no_run
/// use distio_master::prelude::*;
/// use std::time::Duration;
/// # async fn demo(slave: Slave) -> Result<(), MasterError> {
/// // Built, not sent: the slave has received nothing yet.
/// let request = slave.exec("square", &7u64).timeout(Duration::from_secs(5));
///
/// // Sent now, when first polled; the 5 s run from here.
/// let n: u64 = request.await?.value()?;
/// assert_eq!(n, 49);
///
/// // Two requests in flight together: both are sent when `join!` first polls them.
/// let (a, b) = tokio::join!(slave.exec("square", &2u64), slave.exec("square", &3u64));
/// println!("{} {}", a?.value::<u64>()?, b?.value::<u64>()?);
///
/// // Sent in the background, without waiting here for the response.
/// use std::future::IntoFuture;
/// let background = tokio::spawn(slave.exec("square", &4u64).into_future());
/// let sixteen: u64 = background.await.expect("not cancelled")?.value()?;
/// # let _ = sixteen;
/// # Ok(()) }
/// ```
#[must_use = "an Exec is lazy: nothing is sent until it is awaited (or polled)"]
pub struct Exec {
    pub(crate) slave: Slave,
    pub(crate) task: String,
    pub(crate) payload: Result<Payload, MasterError>,
    pub(crate) meta: Metadata,
    pub(crate) timeout: Timeout,
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("slave", &self.slave.id())
            .field("task", &self.task)
            .field("meta", &self.meta)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Exec {
    pub(crate) fn new(slave: Slave, task: String, payload: Result<Payload, MasterError>) -> Self {
        Exec {
            slave,
            task,
            payload,
            meta: Metadata::new(),
            timeout: Timeout::Inherit,
        }
    }

    metadata_setters!();

    /// The request as a future (same as `.await`, which calls this). This does not send
    /// it either: the [`ExecFuture`] sends the request when it is first polled.
    pub fn send(self) -> ExecFuture {
        ExecFuture::new(self)
    }
}

impl IntoFuture for Exec {
    type Output = Result<Response, MasterError>;
    type IntoFuture = ExecFuture;

    fn into_future(self) -> ExecFuture {
        self.send()
    }
}

/// One request sent to several slaves at once; `.await` it for a [`ResponseArray`] in the
/// order of the slaves. The data is encoded once and the same bytes go to every slave.
///
/// Made by [`Master::tell`](crate::Master::tell) and [`SlaveArray::exec`](crate::SlaveArray::exec).
/// Lazy like an [`Exec`]: nothing is sent until it is first polled (awaited).
#[must_use = "a Broadcast is lazy: nothing is sent until it is awaited (or polled)"]
pub struct Broadcast {
    slaves: Result<Vec<Slave>, MasterError>,
    task: String,
    payload: Result<Payload, MasterError>,
    meta: Metadata,
    timeout: Timeout,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slaves = self
            .slaves
            .as_ref()
            .map(|s| s.iter().map(Slave::id).collect::<Vec<_>>());
        f.debug_struct("Broadcast")
            .field("slaves", &slaves)
            .field("task", &self.task)
            .field("meta", &self.meta)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Broadcast {
    pub(crate) fn new(
        slaves: Result<Vec<Slave>, MasterError>,
        task: String,
        payload: Result<Payload, MasterError>,
    ) -> Self {
        Broadcast {
            slaves,
            task,
            payload,
            meta: Metadata::new(),
            timeout: Timeout::Inherit,
        }
    }

    metadata_setters!();

    /// Sends the request to every slave and waits for all responses (same as `.await`).
    ///
    /// With catch-all on, the first error response (in slave order) is returned as `Err`.
    pub async fn send(self) -> Result<ResponseArray, MasterError> {
        let slaves = self.slaves?;
        if slaves.is_empty() {
            return Err(MasterError::NoTargets);
        }
        let payload = self.payload?;
        let sends = slaves.into_iter().map(|slave| {
            Exec::new(slave, self.task.clone(), Ok(payload.clone()))
                .meta(self.meta.clone())
                .timeout(self.timeout)
                .send()
        });
        join_all(sends)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map(ResponseArray::from)
    }
}

impl IntoFuture for Broadcast {
    type Output = Result<ResponseArray, MasterError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
