//! Recently verified credentials, so a master that reconnects does not pay (and make the
//! server pay) a password-hash verification each time.
//!
//! Entries are HMAC tags of what was presented under a key made fresh for each process,
//! never the credentials; the cache is small, bounded, and its entries expire.

use std::time::{Duration, Instant};

/// Most entries held; the oldest is dropped to make room.
pub(crate) const CAPACITY: usize = 64;
/// How long a verification is remembered.
pub(crate) const TTL: Duration = Duration::from_secs(5 * 60);

/// A bounded set of tags, each with the instant it expires, oldest first.
#[derive(Debug, Default)]
pub(crate) struct VerifiedCache {
    entries: Vec<([u8; 32], Instant)>,
}

impl VerifiedCache {
    /// Whether `tag` was verified and has not expired at `now`.
    pub(crate) fn contains(&mut self, tag: &[u8; 32], now: Instant) -> bool {
        self.entries.retain(|(_, expires)| *expires > now);
        self.entries.iter().any(|(t, _)| t == tag)
    }

    /// Remembers `tag` until `now + TTL`, dropping the oldest entry if full.
    pub(crate) fn insert(&mut self, tag: [u8; 32], now: Instant) {
        self.entries
            .retain(|(t, expires)| *expires > now && *t != tag);
        if self.entries.len() >= CAPACITY {
            self.entries.remove(0);
        }
        self.entries.push((tag, now + TTL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_oldest_makes_room() {
        let mut cache = VerifiedCache::default();
        let now = Instant::now();
        cache.insert([1; 32], now);
        assert!(cache.contains(&[1; 32], now + TTL / 2));
        assert!(!cache.contains(&[2; 32], now));
        assert!(!cache.contains(&[1; 32], now + TTL));
        for i in 0..=CAPACITY {
            cache.insert([i as u8; 32], now);
        }
        assert_eq!(cache.entries.len(), CAPACITY);
        assert!(!cache.contains(&[0; 32], now));
        assert!(cache.contains(&[CAPACITY as u8; 32], now));
    }
}
