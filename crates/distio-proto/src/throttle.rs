//! Rate-limiting repeated warnings.
//!
//! A peer that sends a million bad frames must not make a million log lines. Each place
//! that warns about something a peer can repeat keeps a [`Throttle`] and logs only when it
//! lets the event through, reporting how many were suppressed since the last line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets one event through per interval and counts the ones it holds back.
///
/// Lock-free; safe to keep in a `static` shared by every thread.
///
/// ```
/// use distio_proto::Throttle;
/// use std::time::Duration;
///
/// static STRAY: Throttle = Throttle::new(Duration::from_secs(1));
/// let mut logged = 0;
/// for _ in 0..1000 {
///     if let Some(suppressed) = STRAY.allow() {
///         logged += 1;
///         assert_eq!(suppressed, 0); // the first line of the interval
///     }
/// }
/// assert_eq!(logged, 1);
/// assert_eq!(STRAY.suppressed(), 999);
/// ```
#[derive(Debug)]
pub struct Throttle {
    interval_nanos: u64,
    /// Nanoseconds after the process-wide anchor at which the next event may pass
    /// (0: the first event passes).
    next_at: AtomicU64,
    /// Events held back since the last one that passed.
    suppressed: AtomicU64,
}

impl Throttle {
    /// A throttle letting one event through per `interval`.
    pub const fn new(interval: Duration) -> Self {
        let nanos = interval.as_nanos();
        Throttle {
            interval_nanos: if nanos > u64::MAX as u128 {
                u64::MAX
            } else {
                nanos as u64
            },
            next_at: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` if this event should be logged, `n` being how many were suppressed since
    /// the last one logged; `None` if it should be dropped (and it is counted).
    pub fn allow(&self) -> Option<u64> {
        let now = elapsed_nanos();
        let next = self.next_at.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_at
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_nanos).max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Events held back since the last one let through.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

/// Nanoseconds since the first call in this process.
fn elapsed_nanos() -> u64 {
    static ANCHOR: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let anchor = *ANCHOR.get_or_init(Instant::now);
    u64::try_from(anchor.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_and_counts_the_rest() {
        let t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.allow(), Some(2));
        assert_eq!(t.suppressed(), 0);
    }

    #[test]
    fn a_zero_interval_lets_everything_through() {
        let t = Throttle::new(Duration::ZERO);
        for _ in 0..10 {
            assert_eq!(t.allow(), Some(0));
        }
    }
}
