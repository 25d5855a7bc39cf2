//! A list of slaves that can be addressed together.

use distio_proto::{Payload, SlaveId};
use futures_util::future::join_all;
use serde::Serialize;
use std::hash::{BuildHasher, RandomState};
use std::ops::Deref;

use crate::events::Events;
use crate::{Broadcast, MasterError, Signal, Slave};

/// Several slaves, addressed together: broadcast a task, close or kill them all, or
/// subscribe to their events. Derefs to `[Slave]`, so `slaves[0]`, `len` and iteration
/// work as on a slice.
///
/// ```no_run
/// use distio_master::{Master, SpawnOptions};
///
/// # async fn demo() -> Result<(), distio_master::MasterError> {
/// let master = Master::new();
/// let slaves = master.spawn_many(3, SpawnOptions::new("./worker").alias("w")).await?;
/// let answers = slaves.exec("say hello", &()).await?;
/// println!("{}", answers.join_values::<String>(", ")?);
/// slaves.close().await;
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

    /// Closes every slave (see [`Slave::close`]); returns when all have ended.
    pub async fn close(&self) {
        join_all(self.0.iter().map(Slave::close)).await;
    }

    /// Shuts every slave down gracefully (see [`Slave::shutdown`]); returns when all have
    /// ended.
    pub async fn shutdown(&self) {
        join_all(self.0.iter().map(Slave::shutdown)).await;
    }

    /// Sends `signal` to every slave; the first failure is returned after all were tried.
    pub fn kill(&self, signal: Signal) -> Result<(), MasterError> {
        let results: Vec<_> = self.0.iter().map(|s| s.kill(signal)).collect();
        results.into_iter().collect()
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
