//! Many hosts as one: a [`Cluster`] of `distio-serve` hosts that a master spreads its
//! slaves over.
//!
//! - `builder`: [`ClusterBuilder`], the hosts (URLs, a DNS name, a Slurm node list) and
//!   the settings they share.
//! - `placement`: [`Placement`] and its policies, [`HostView`], [`HostHealth`].
//! - `member`: one host's health and last report.
//! - `probe`: knocking on a down host until it answers.
//! - `watch`: marking a host down the moment its session ends.
//! - `backoff`: the probe's delays.
//! - `spawn`: placing one slave, falling back to the next host when one refuses.

mod backoff;
mod builder;
mod member;
mod placement;
mod probe;
mod spawn;
mod watch;

pub use builder::{ClusterBuilder, DEFAULT_PROBE_FIRST, DEFAULT_PROBE_MAX};
pub use placement::{HostHealth, HostView, LeastLoaded, Placement, RoundRobin};
pub use spawn::HostRefusal;

pub(crate) use backoff::Backoff;
pub(crate) use spawn::{Verdict, judge};

use distio_proto::remote::SessionCodec;
use futures_util::future::join_all;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::remote::{Session, Sessions};
use crate::sync::lock;
use member::Member;

/// A set of `distio-serve` hosts that a master spreads its slaves over.
///
/// Spawning with [`SpawnOptions::cluster`](crate::SpawnOptions::cluster) places each slave
/// by the cluster's [`Placement`] (by default [`LeastLoaded`]: the host with the most room
/// for its size, by what each server reports in its welcome and at every heartbeat), falls
/// back to the other hosts when one refuses, and returns the same [`Slave`](crate::Slave)s
/// and [`SlaveArray`](crate::SlaveArray)s as a single host does, so every pattern works over
/// them unchanged. A session to a host is opened by the first spawn that needs it and
/// reused.
///
/// A host that is lost (its server killed, its machine or network gone: found within the
/// heartbeat's interval × misses, see [`LinkSettings`](crate::LinkSettings)) fails its
/// slaves' pending requests with an error naming it, is skipped by new spawns, and is probed
/// again with exponential backoff and jitter until it answers; then it takes slaves again.
///
/// Cheap to clone: clones share the hosts, their health and the policy. Dropping the last
/// clone stops its probes.
///
/// ```no_run
/// use distio_master::{Cluster, Master, SpawnOptions};
/// # async fn demo() -> Result<(), distio_master::MasterError> {
/// let cluster = Cluster::builder()
///     .urls(["ws://node1:1337", "ws://node2:1337", "ws://node3:1337"])
///     .credentials("ops", "s3cret")
///     .build()
///     .await?;
/// let master = Master::new();
/// let slaves = master.spawn_many(30, SpawnOptions::cluster(&cluster, "square.sh")).await?;
/// for host in cluster.hosts() {
///     println!("{}: {} of ours, {}/{} busy", host.host, host.ours, host.busy, host.capacity);
/// }
/// # drop(slaves); Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    members: Vec<Member>,
    policy: Box<dyn Placement>,
    /// The probe's first delay and its cap.
    backoff: (Duration, Duration),
    /// Held while a slave's host is chosen and counted, so that slaves started together
    /// see each other's places.
    placing: Mutex<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for member in &self.members {
            let mut state = lock(&member.state);
            for task in [state.probe.take(), state.watch.take()]
                .into_iter()
                .flatten()
            {
                task.abort();
            }
        }
    }
}

impl Cluster {
    /// A builder with no hosts yet.
    ///
    /// ```
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let cluster = distio_master::Cluster::builder().url("ws://127.0.0.1:1337").build().await?;
    /// assert_eq!(cluster.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// How many hosts it has.
    pub fn len(&self) -> usize {
        self.inner.members.len()
    }

    /// Whether it has no hosts (a built cluster always has one at least).
    pub fn is_empty(&self) -> bool {
        self.inner.members.is_empty()
    }

    /// Each host as placement last saw it: health, capacity, how busy, load, this master's
    /// slaves there.
    ///
    /// ```
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// use distio_master::{Cluster, HostHealth};
    /// let cluster = Cluster::builder().url("ws://127.0.0.1:1337").build().await?;
    /// assert_eq!(cluster.hosts()[0].health, HostHealth::Unknown); // not contacted yet
    /// # Ok(()) }
    /// ```
    pub fn hosts(&self) -> Vec<HostView> {
        self.inner.members.iter().map(Member::view).collect()
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    fn new(
        members: Vec<Member>,
        policy: Box<dyn Placement>,
        backoff: (Duration, Duration),
    ) -> Self {
        Cluster {
            inner: Arc::new(Inner {
                members,
                policy,
                backoff,
                placing: Mutex::new(()),
            }),
        }
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<&str> = self
            .inner
            .members
            .iter()
            .map(|m| m.shown.as_str())
            .collect();
        f.debug_struct("Cluster").field("hosts", &hosts).finish()
    }
}

/// A host chosen for one slave, counted as starting there until dropped.
pub(crate) struct Reservation {
    inner: Arc<Inner>,
    index: usize,
}

impl Reservation {
    pub(crate) fn host(&self) -> &crate::Host {
        &self.member().host
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    fn member(&self) -> &Member {
        &self.inner.members[self.index]
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut state = lock(&self.member().state);
        state.starting = state.starting.saturating_sub(1);
    }
}

/// How long a spawn waits for a host's session to open while other hosts take slaves.
const OPEN_WAIT: Duration = Duration::from_secs(3);

impl Inner {
    /// Brings every member's health and figures up to date from the master's sessions,
    /// opening the sessions of hosts not contacted yet (all at once).
    pub(crate) async fn refresh(self: &Arc<Self>, sessions: &Sessions, codec: SessionCodec) {
        // First what is known without waiting: hosts up with a live session, hosts down.
        let mut to_open = Vec::new();
        for member in &self.members {
            let (health, fresh) = {
                let state = lock(&member.state);
                (state.health.clone(), state.fresh_session)
            };
            match health {
                member::Health::Down { .. } => {
                    // Found down outside a spawn (its session was lost): probe it.
                    if lock(&member.state).probe.is_none() {
                        probe::start(self, member.index);
                    }
                }
                member::Health::Up if !fresh => match sessions.current(&member.host) {
                    Some(session) if session.is_lost() => {
                        let reason = session
                            .loss_reason()
                            .unwrap_or_else(|| "its session was lost".into());
                        self.mark_down(member.index, reason);
                    }
                    Some(session) => self.up(member, &session),
                    None => to_open.push(member),
                },
                _ => to_open.push(member),
            }
        }
        if to_open.is_empty() {
            return;
        }
        // Then the sessions to open, all at once. While another host takes slaves, a host
        // that does not answer within OPEN_WAIT does not hold the spawn up: it is marked
        // down and its probe takes over.
        let any_up = self
            .members
            .iter()
            .any(|m| m.view().health == HostHealth::Up);
        let opens = join_all(to_open.iter().map(|m| self.open(m, sessions, codec)));
        if !any_up {
            opens.await;
            return;
        }
        if tokio::time::timeout(OPEN_WAIT, opens).await.is_err() {
            for member in to_open {
                if !matches!(lock(&member.state).health, member::Health::Up) {
                    self.mark_down(
                        member.index,
                        format!("no session within {OPEN_WAIT:?} (it is probed meanwhile)"),
                    );
                }
            }
        }
    }

    async fn open(self: &Arc<Self>, member: &Member, sessions: &Sessions, codec: SessionCodec) {
        match sessions.get(&member.host, codec).await {
            Ok(session) => self.up(member, &session),
            Err(err) => self.mark_down(member.index, err.to_string()),
        }
    }

    /// Records `member` as up with `session`, and watches a session new to it: when that
    /// session ends, the member is marked down (and probed) at once, not at the next spawn.
    fn up(self: &Arc<Self>, member: &Member, session: &Arc<Session>) {
        if member.up(session) {
            watch::start(self, member.index, session);
        }
    }

    /// Marks member `index` down and starts probing it.
    pub(crate) fn mark_down(self: &Arc<Self>, index: usize, reason: String) {
        if let Some(member) = self.members.get(index)
            && member.down(reason)
        {
            probe::start(self, index);
        }
    }

    /// Chooses the host for one slave among the members that are up and not in
    /// `skip`, and counts the slave as starting there.
    pub(crate) fn pick(self: &Arc<Self>, skip: &[usize]) -> Option<Reservation> {
        let _placing = lock(&self.placing);
        let candidates: Vec<_> = self
            .members
            .iter()
            .filter(|m| !skip.contains(&m.index) && !m.is_down())
            .map(Member::view)
            .filter(|v| v.health == HostHealth::Up)
            .collect();
        let at = self.policy.place(&candidates)?;
        let index = candidates.get(at)?.index;
        lock(&self.members[index].state).starting += 1;
        Some(Reservation {
            inner: Arc::clone(self),
            index,
        })
    }

    /// Why each member in `tried` refused, and the down ones' reasons, for the error.
    pub(crate) fn shown(&self, index: usize) -> String {
        self.members
            .get(index)
            .map_or_else(String::new, |m| m.shown.clone())
    }

    /// The members that are down now, with their reasons.
    pub(crate) fn down_reasons(&self) -> Vec<(usize, String)> {
        self.members
            .iter()
            .filter_map(|m| match &lock(&m.state).health {
                member::Health::Down { reason, .. } => Some((m.index, reason.clone())),
                _ => None,
            })
            .collect()
    }
}
