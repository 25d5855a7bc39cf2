//! A list of slaves that can be addressed together.

use distio_proto::{Payload, SlaveId};
use futures_util::future::join_all;
use serde::Serialize;
use std::hash::{BuildHasher, RandomState};
use std::ops::Deref;
use std::path::Path;
use std::process::ExitStatus;

use crate::events::Events;
use crate::{Broadcast, MasterError, Signal, Slave};

/// Several slaves, addressed together: broadcast a task, close or kill them all, or
/// subscribe to their events. Derefs to `[Slave]`, so `slaves[0]`, `len` and iteration
/// work as on a slice.
///
/// It is also how slaves are found: [`Master::all`](crate::Master::all) gives every live
/// slave, the filters ([`idle`](Self::idle), [`busy`](Self::busy),
/// [`in_group`](Self::in_group), [`not_in_group`](Self::not_in_group),
/// [`local`](Self::local), [`remote`](Self::remote), [`with_path`](Self::with_path),
/// [`filter`](Self::filter)) narrow it, keeping the order, and the picks
/// ([`least_busy`](Self::least_busy), [`by_id`](Self::by_id), [`by_alias`](Self::by_alias),
/// [`random`](Self::random)) choose one: `master.all().idle().in_group("x").least_busy()`.
/// The filters look at each slave when they run; a slave can become busy, or be closed,
/// right after.
///
/// ```no_run
/// use distio_master::prelude::*;
///
/// # async fn demo() -> Result<(), distio_master::MasterError> {
/// let master = Master::new();
/// let slaves = master.spawn_many(3, SpawnOptions::new("./worker").alias("w")).await?;
/// let answers = slaves.exec("say hello", &()).await?;
/// println!("{}", answers.join_strings(", ")?);
/// slaves.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlaveArray(Vec<Slave>);

impl SlaveArray {
    /// An empty array.
    pub fn new() -> Self {
        SlaveArray(Vec::new())
    }

    /// Sends `task` with `data` to every slave (the data is encoded once); await it for a
    /// [`ResponseArray`](crate::ResponseArray).
    pub fn exec<T: Serialize + ?Sized>(&self, task: impl Into<String>, data: &T) -> Broadcast {
        Broadcast::new(
            Ok(self.0.clone()),
            task.into(),
            Payload::encode(data).map_err(MasterError::Encode),
        )
    }

    /// The slaves for which `keep` is true, in order.
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let chatty = master.all().filter(|s| s.sent() > 100);
    /// # }
    /// ```
    #[must_use]
    pub fn filter(mut self, mut keep: impl FnMut(&Slave) -> bool) -> Self {
        self.0.retain(|s| keep(s));
        self
    }

    /// The slaves with no requests pending (see [`Slave::is_idle`]).
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let free = master.all().idle();
    /// # }
    /// ```
    #[must_use]
    pub fn idle(self) -> Self {
        self.filter(Slave::is_idle)
    }

    /// The slaves with requests pending (see [`Slave::is_busy`]).
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let working = master.all().busy();
    /// # }
    /// ```
    #[must_use]
    pub fn busy(self) -> Self {
        self.filter(Slave::is_busy)
    }

    /// The slaves in `group` (see [`Slave::in_group`]).
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let free_squarers = master.all().in_group("squares").idle();
    /// # }
    /// ```
    #[must_use]
    pub fn in_group(self, group: &str) -> Self {
        self.filter(|s| s.in_group(group))
    }

    /// The slaves not in `group` (also those in no group).
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let others = master.all().not_in_group("squares");
    /// # }
    /// ```
    #[must_use]
    pub fn not_in_group(self, group: &str) -> Self {
        self.filter(|s| !s.in_group(group))
    }

    /// The local slave processes (see [`Slave::is_local`]).
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let here = master.all().local();
    /// # }
    /// ```
    #[must_use]
    pub fn local(self) -> Self {
        self.filter(Slave::is_local)
    }

    /// The slaves that are not local processes (see [`Slave::is_remote`]).
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let elsewhere = master.all().remote();
    /// # }
    /// ```
    #[must_use]
    pub fn remote(self) -> Self {
        self.filter(Slave::is_remote)
    }

    /// The local slaves started from `path`, compared exactly as it was given to
    /// [`SpawnOptions::new`](crate::SpawnOptions::new).
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let workers = master.all().with_path("./worker");
    /// # }
    /// ```
    #[must_use]
    pub fn with_path(self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        self.filter(|s| s.path() == Some(path))
    }

    /// The slave with the fewest pending requests (the first in order on a tie, the lowest
    /// id for [`Master::all`](crate::Master::all)), or `None` if the array is empty.
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) -> Result<(), distio_master::MasterError> {
    /// if let Some(slave) = master.all().in_group("squares").least_busy() {
    ///     slave.exec("square", &3u64).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn least_busy(&self) -> Option<Slave> {
        self.0.iter().min_by_key(|s| s.pending()).cloned()
    }

    /// The slave with this id, if it is in the array.
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let first = master.all().by_id(0);
    /// # }
    /// ```
    pub fn by_id(&self, id: SlaveId) -> Option<Slave> {
        self.0.iter().find(|s| s.id() == id).cloned()
    }

    /// The slave with this alias, if it is in the array.
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) {
    /// let worker = master.all().idle().by_alias("worker");
    /// # }
    /// ```
    pub fn by_alias(&self, alias: &str) -> Option<Slave> {
        self.0.iter().find(|s| s.alias() == Some(alias)).cloned()
    }

    /// A slave picked at random, or `None` if the array is empty.
    pub fn random(&self) -> Option<&Slave> {
        if self.0.is_empty() {
            return None;
        }
        let pick = RandomState::new().hash_one(std::time::Instant::now()) as usize % self.0.len();
        self.0.get(pick)
    }

    /// The slaves' ids, in order.
    pub fn ids(&self) -> Vec<SlaveId> {
        self.0.iter().map(Slave::id).collect()
    }

    /// Closes every slave at once (see [`Slave::close`]); returns when all have ended, with
    /// how each exited, in order.
    ///
    /// ```no_run
    /// # async fn demo(slaves: distio_master::SlaveArray) -> Result<(), distio_master::MasterError> {
    /// let statuses = slaves.close().await?;
    /// assert_eq!(statuses.len(), slaves.len());
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) -> Result<Vec<Option<ExitStatus>>, MasterError> {
        gather(join_all(self.0.iter().map(Slave::close)).await)
    }

    /// Shuts every slave down gracefully, at once (see [`Slave::shutdown`]); returns when
    /// all have ended, with how each exited, in order.
    ///
    /// ```no_run
    /// # async fn demo(slaves: distio_master::SlaveArray) -> Result<(), distio_master::MasterError> {
    /// slaves.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) -> Result<Vec<Option<ExitStatus>>, MasterError> {
        gather(join_all(self.0.iter().map(Slave::shutdown)).await)
    }

    /// Sends `signal` to every slave and waits for them as [`Slave::kill`] does; returns
    /// how each exited, in order, or the first failure once all were tried.
    ///
    /// ```no_run
    /// use distio_master::Signal;
    /// # async fn demo(slaves: distio_master::SlaveArray) -> Result<(), distio_master::MasterError> {
    /// slaves.kill(Signal::KILL).await?;
    /// # Ok(()) }
    /// ```
    pub async fn kill(&self, signal: Signal) -> Result<Vec<Option<ExitStatus>>, MasterError> {
        gather(join_all(self.0.iter().map(|s| s.kill(signal))).await)
    }

    /// Waits until every slave has ended.
    pub async fn exited(&self) {
        join_all(self.0.iter().map(Slave::exited)).await;
    }

    /// Subscribes to the events named `name` of every slave, on one receiver.
    pub fn subscribe(&self, name: impl Into<String>) -> Events {
        self.subscribe_filtered(Some(name.into()))
    }

    /// Subscribes to all events of every slave, on one receiver.
    pub fn subscribe_all(&self) -> Events {
        self.subscribe_filtered(None)
    }

    fn subscribe_filtered(&self, filter: Option<String>) -> Events {
        let (events, sub) = Events::new(filter);
        for slave in &self.0 {
            slave.subscribe_with(sub.clone());
        }
        events
    }

    /// Adds a slave.
    pub fn push(&mut self, slave: Slave) {
        self.0.push(slave);
    }

    /// The slaves as a vector.
    pub fn into_vec(self) -> Vec<Slave> {
        self.0
    }
}

impl Deref for SlaveArray {
    type Target = [Slave];
    fn deref(&self) -> &[Slave] {
        &self.0
    }
}

impl From<Vec<Slave>> for SlaveArray {
    fn from(slaves: Vec<Slave>) -> Self {
        SlaveArray(slaves)
    }
}

impl FromIterator<Slave> for SlaveArray {
    fn from_iter<I: IntoIterator<Item = Slave>>(iter: I) -> Self {
        SlaveArray(iter.into_iter().collect())
    }
}

impl IntoIterator for SlaveArray {
    type Item = Slave;
    type IntoIter = std::vec::IntoIter<Slave>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a SlaveArray {
    type Item = &'a Slave;
    type IntoIter = std::slice::Iter<'a, Slave>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The statuses of an ending applied to many slaves, or its first failure.
fn gather(
    results: Vec<Result<Option<ExitStatus>, MasterError>>,
) -> Result<Vec<Option<ExitStatus>>, MasterError> {
    results.into_iter().collect()
}
