//! Where the next slave goes: what the master knows of each host ([`HostView`]), and the
//! policies that choose among them ([`Placement`], [`LeastLoaded`], [`RoundRobin`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Whether a host of a [`Cluster`](crate::Cluster) takes slaves now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostHealth {
    /// Not contacted yet: its session opens with the first spawn that needs it.
    Unknown,
    /// Its session is open (or it answered its last probe).
    Up,
    /// Its link dropped and the master is resuming the session: its slaves' requests wait,
    /// new slaves go elsewhere meanwhile.
    Resuming,
    /// Lost, refused, or unreachable: skipped by placement, probed again after a backoff.
    Down {
        /// Why, as a sentence.
        reason: String,
        /// How long ago it went down.
        since: Duration,
    },
}

/// One host of a [`Cluster`](crate::Cluster) as placement sees it: its health and what its
/// server last reported (in the welcome, then at every heartbeat), plus what this master
/// has asked of it since.
///
/// ```
/// use distio_master::{HostHealth, HostView};
/// let view = HostView::new(0, "node1:1337", HostHealth::Up).with_capacity(8, 6);
/// assert_eq!(view.free(), 2);
/// assert!(view.fill() > 0.7);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HostView {
    /// Its position among the cluster's hosts.
    pub index: usize,
    /// `host:port` (never a password).
    pub host: String,
    /// Whether it takes slaves now.
    pub health: HostHealth,
    /// How many slaves its server runs at once (0 until it has reported).
    pub capacity: u32,
    /// Slaves running there as last reported, plus those this master started there since.
    pub busy: u32,
    /// Spawns waiting in its server's queue, as last reported.
    pub queued: u32,
    /// Its machine's CPU count (0 until reported).
    pub cpus: u32,
    /// Its machine's one-minute load average, as last reported.
    pub load: f32,
    /// This master's slaves on it now.
    pub ours: u32,
}

impl HostView {
    /// A view with nothing reported yet.
    pub fn new(index: usize, host: impl Into<String>, health: HostHealth) -> Self {
        HostView {
            index,
            host: host.into(),
            health,
            capacity: 0,
            busy: 0,
            queued: 0,
            cpus: 0,
            load: 0.0,
            ours: 0,
        }
    }

    /// The same view with this capacity and this many busy places (for tests and custom
    /// policies).
    #[must_use]
    pub fn with_capacity(mut self, capacity: u32, busy: u32) -> Self {
        self.capacity = capacity;
        self.busy = busy;
        self
    }

    /// Places free now.
    pub fn free(&self) -> u32 {
        self.capacity.saturating_sub(self.busy)
    }

    /// How full it is: busy places over capacity (above 1 when its queue is used; infinite
    /// with no capacity).
    pub fn fill(&self) -> f64 {
        if self.capacity == 0 {
            return f64::INFINITY;
        }
        f64::from(self.busy) / f64::from(self.capacity)
    }

    /// Load per CPU, for ties.
    fn load_per_cpu(&self) -> f64 {
        f64::from(self.load) / f64::from(self.cpus.max(1))
    }
}

/// Chooses the host for the next slave of a [`Cluster`](crate::Cluster).
///
/// `candidates` holds only hosts that take slaves now (up, not refused for this spawn), in
/// the cluster's order; the answer is a position in it, or `None` to start nothing. A host
/// that refuses the spawn is left out and the policy asked again.
///
/// ```
/// use distio_master::{HostView, Placement};
///
/// /// Everything on the first host that has a free place, else nowhere.
/// struct FirstFree;
///
/// impl Placement for FirstFree {
///     fn place(&self, candidates: &[HostView]) -> Option<usize> {
///         candidates.iter().position(|h| h.free() > 0)
///     }
/// }
/// # use distio_master::HostHealth;
/// let hosts = [HostView::new(0, "a:1", HostHealth::Up).with_capacity(2, 2),
///              HostView::new(1, "b:1", HostHealth::Up).with_capacity(2, 0)];
/// assert_eq!(FirstFree.place(&hosts), Some(1));
/// ```
pub trait Placement: Send + Sync + 'static {
    /// The position in `candidates` of the host to start the next slave on.
    fn place(&self, candidates: &[HostView]) -> Option<usize>;
}

/// The default policy: the least-filled host that has a free place (busy over capacity;
/// ties go to the lighter machine, then the earlier host); when every host is full, the one
/// with the shortest queue (its server queues the spawn).
///
/// ```
/// use distio_master::{HostHealth, HostView, LeastLoaded, Placement};
/// let hosts = [
///     HostView::new(0, "a:1", HostHealth::Up).with_capacity(4, 3),
///     HostView::new(1, "b:1", HostHealth::Up).with_capacity(16, 4),
/// ];
/// assert_eq!(LeastLoaded.place(&hosts), Some(1));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct LeastLoaded;

impl Placement for LeastLoaded {
    fn place(&self, candidates: &[HostView]) -> Option<usize> {
        let with_room = candidates
            .iter()
            .enumerate()
            .filter(|(_, h)| h.free() > 0)
            .min_by(|(_, a), (_, b)| {
                a.fill()
                    .total_cmp(&b.fill())
                    .then(a.load_per_cpu().total_cmp(&b.load_per_cpu()))
                    .then(a.index.cmp(&b.index))
            });
        if let Some((at, _)) = with_room {
            return Some(at);
        }
        candidates
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| {
                a.queued
                    .cmp(&b.queued)
                    .then(a.fill().total_cmp(&b.fill()))
                    .then(a.index.cmp(&b.index))
            })
            .map(|(at, _)| at)
    }
}

/// Each host in turn, whatever its load (hosts that are down or refuse are skipped).
///
/// ```
/// use distio_master::{HostHealth, HostView, Placement, RoundRobin};
/// let hosts: Vec<_> = (0..3).map(|i| HostView::new(i, format!("h{i}:1"), HostHealth::Up)).collect();
/// let rr = RoundRobin::default();
/// let picks: Vec<_> = (0..4).map(|_| rr.place(&hosts).unwrap()).collect();
/// assert_eq!(picks, [0, 1, 2, 0]);
/// ```
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Placement for RoundRobin {
    fn place(&self, candidates: &[HostView]) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        // The first candidate at or after the turn's host index, wrapping: hosts that are
        // left out do not shift the others' turns.
        let turn = self.next.load(Ordering::Relaxed);
        let at = candidates.iter().position(|h| h.index >= turn).unwrap_or(0);
        let chosen = candidates.get(at)?;
        self.next.store(chosen.index + 1, Ordering::Relaxed);
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(index: usize, capacity: u32, busy: u32) -> HostView {
        HostView::new(index, format!("h{index}:1"), HostHealth::Up).with_capacity(capacity, busy)
    }

    /// Places `n` slaves one by one, as the cluster does, counting each on its host.
    fn fill(policy: &dyn Placement, mut hosts: Vec<HostView>, n: usize) -> Vec<u32> {
        let mut counts = vec![0; hosts.len()];
        for _ in 0..n {
            let at = policy.place(&hosts).expect("a host");
            hosts[at].busy += 1;
            counts[at] += 1;
        }
        counts
    }

    #[test]
    fn least_loaded_fills_in_proportion_to_capacity() {
        let counts = fill(
            &LeastLoaded,
            vec![up(0, 4, 0), up(1, 10, 0), up(2, 16, 0)],
            30,
        );
        assert_eq!(counts, [4, 10, 16]);
    }

    #[test]
    fn least_loaded_never_exceeds_a_capacity_while_another_host_has_room() {
        let counts = fill(&LeastLoaded, vec![up(0, 2, 0), up(1, 20, 15)], 5);
        // Host 1 is 75 % full, host 0 empty: host 0 first, but only up to its capacity.
        assert_eq!(counts, [2, 3]);
    }

    #[test]
    fn least_loaded_queues_on_the_shortest_queue_when_all_are_full() {
        let mut a = up(0, 2, 2);
        a.queued = 5;
        let b = up(1, 2, 2);
        assert_eq!(LeastLoaded.place(&[a, b]), Some(1));
    }

    #[test]
    fn least_loaded_breaks_ties_by_load_per_cpu() {
        let mut a = up(0, 4, 1);
        a.load = 3.0;
        a.cpus = 2;
        let mut b = up(1, 4, 1);
        b.load = 3.0;
        b.cpus = 8;
        assert_eq!(LeastLoaded.place(&[a, b]), Some(1));
    }

    #[test]
    fn no_candidates_no_place() {
        assert_eq!(LeastLoaded.place(&[]), None);
        assert_eq!(RoundRobin::default().place(&[]), None);
    }

    #[test]
    fn round_robin_keeps_turns_when_a_host_drops_out() {
        let rr = RoundRobin::default();
        let all = vec![up(0, 1, 0), up(1, 1, 0), up(2, 1, 0)];
        assert_eq!(rr.place(&all), Some(0));
        // Host 1 is down: host 2's turn comes next, then host 0.
        let without_1 = vec![all[0].clone(), all[2].clone()];
        assert_eq!(without_1[rr.place(&without_1).unwrap()].index, 2);
        assert_eq!(without_1[rr.place(&without_1).unwrap()].index, 0);
    }
}
