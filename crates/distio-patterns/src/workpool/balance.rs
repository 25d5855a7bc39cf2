//! How a workpool shares tasks among its transports.

/// How a [`Workpool`](crate::Workpool) shares tasks among its transports; set with
/// [`Workpool::balance`](crate::Workpool::balance).
///
/// Both rules send a task only to a live transport with a free slot, prefer the least busy
/// (idle first), then the one sent the fewest tasks, then the next in round-robin order
/// after the last one used. They differ in which transports may take the next task:
///
/// - [`EvenCounts`](Self::EvenCounts) (the default) keeps the numbers of tasks sent to the
///   live transports within `max_in_flight` of each other, whatever their speed: a
///   transport that is ahead waits for the others to catch up, even if it is free.
/// - [`FirstFree`](Self::FirstFree) gives the next task to whichever transport frees a slot
///   first, so faster transports take more.
///
/// ```
/// use distio_patterns::prelude::*;
/// use distio_patterns::{Balance, InProcess, Workpool};
/// use distio_slave::TaskRegistry;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("square", |n: u64, _| async move { Ok(n * n) })?;
/// let pool = Workpool::new(InProcess::many(3, tasks))?; // Balance::EvenCounts
/// pool.run_all("square", &[2u64; 30]).await?;
/// // Equal transports, one task in flight each: at most one apart, always.
/// let counts: Vec<usize> = pool.sent_counts().into_iter().map(|(_, n)| n).collect();
/// assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
///
/// // Unequal transports: let the fast ones take more.
/// let pool = pool.balance(Balance::FirstFree);
/// assert_eq!(pool.run("square", &3u64).await?.value::<u64>()?, 9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Balance {
    /// A live transport may take the next task only while it has been sent fewer than
    /// (fewest sent to any live transport + `max_in_flight`) tasks. So with equal
    /// transports and one task in flight each, their counts differ by at most one, and
    /// with `max_in_flight(k)` by at most `k`, however the timing falls. Transports that
    /// died are left out of the comparison, so a dead transport never holds the pool back.
    ///
    /// The price: a transport that is slow holds the others back. Once each of the others
    /// has been sent `max_in_flight` tasks more than it, they get no more until it answers,
    /// and the pool runs at the pace of its slowest member — for at most
    /// [`Workpool::max_hold_back`](crate::Workpool::max_hold_back) per waiting task: a task
    /// kept waiting that long goes to any free transport, so a transport that hangs slows
    /// the pool but never stalls it. Use [`FirstFree`](Self::FirstFree) for transports of
    /// unequal speed.
    #[default]
    EvenCounts,
    /// The next task goes to whichever live transport has a free slot first: the most
    /// throughput with unequal transports, or when one may stall, but no bound on how far
    /// apart the counts drift (on a loaded machine, speed noise alone moves them apart by
    /// hundreds over a few thousand tasks).
    FirstFree,
}
