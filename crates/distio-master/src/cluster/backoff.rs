//! How long to wait before probing a down host again: exponential, capped, jittered.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays that double from `first` up to `max`, each drawn at random from its upper half
/// (so many masters that lost one host do not all knock at once).
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        let first = first.max(Duration::from_millis(1));
        Backoff {
            first,
            max: max.max(first),
            attempt: 0,
            seed: RandomState::new().build_hasher().finish() | 1,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .first
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_nanos().max(1);
        let extra = u128::from(self.random()) % spread;
        half + Duration::from_nanos(u64::try_from(extra).unwrap_or(u64::MAX))
    }

    /// xorshift64*: enough for jitter, nothing else.
    fn random(&mut self) -> u64 {
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_their_upper_half_and_stop_at_the_cap() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let mut backoff = Backoff::new(first, max);
        let mut ceiling = first;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(max);
        }
    }

    #[test]
    fn two_backoffs_do_not_wait_in_step() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let same = (0..8).filter(|_| a.next_delay() == b.next_delay()).count();
        assert!(same < 8);
    }

    #[test]
    fn zero_settings_still_wait_a_little() {
        let mut backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(backoff.next_delay() <= Duration::from_millis(1));
    }
}
