//! When to ping a quiet peer, and when to give up on it: a clock-free rule both sides of a
//! session apply to their own connection.

use std::time::{Duration, Instant};

/// What a session's I/O loop should do about the heartbeat at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// Nothing until this instant; ask again then (or when something arrives).
    WaitUntil(Instant),
    /// Send a ping now (a WebSocket ping), then ask again.
    Ping,
    /// Nothing has arrived for `interval × misses`: the peer is gone; end the session.
    Dead,
}

/// A heartbeat: the peer must be heard from (any message, a pong included) at least once
/// every `interval × misses`; a ping goes out every `interval`.
///
/// The type holds no clock: the caller passes `now` in, so it is tested without sleeping.
///
/// ```
/// use distio_proto::remote::{Beat, Heartbeat};
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let mut beat = Heartbeat::new(Duration::from_secs(5), 3, start);
/// assert_eq!(beat.poll(start), Beat::WaitUntil(start + Duration::from_secs(5)));
/// assert_eq!(beat.poll(start + Duration::from_secs(5)), Beat::Ping);
/// beat.heard(start + Duration::from_secs(6));
/// assert_eq!(beat.poll(start + Duration::from_secs(21)), Beat::Dead);
/// ```
#[derive(Clone, Debug)]
pub struct Heartbeat {
    interval: Duration,
    misses: u32,
    last_heard: Instant,
    last_ping: Instant,
}

impl Heartbeat {
    /// A heartbeat starting at `now`. `interval` is at least a millisecond and `misses` at
    /// least 1.
    pub fn new(interval: Duration, misses: u32, now: Instant) -> Self {
        Heartbeat {
            interval: interval.max(Duration::from_millis(1)),
            misses: misses.max(1),
            last_heard: now,
            last_ping: now,
        }
    }

    /// How long the peer may stay silent.
    pub fn limit(&self) -> Duration {
        self.interval.saturating_mul(self.misses)
    }

    /// Something arrived from the peer at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// What to do at `now`. [`Beat::Ping`] counts as the ping being sent.
    pub fn poll(&mut self, now: Instant) -> Beat {
        if now.saturating_duration_since(self.last_heard) >= self.limit() {
            return Beat::Dead;
        }
        let next_ping = self.last_ping + self.interval;
        if now >= next_ping {
            self.last_ping = now;
            return Beat::Ping;
        }
        Beat::WaitUntil(next_ping.min(self.last_heard + self.limit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_talking_peer_is_never_dead() {
        let t0 = Instant::now();
        let mut beat = Heartbeat::new(Duration::from_secs(1), 2, t0);
        for s in 1..100 {
            let now = t0 + Duration::from_millis(s * 700);
            beat.heard(now);
            assert_ne!(beat.poll(now), Beat::Dead);
        }
    }

    #[test]
    fn a_silent_peer_is_dead_at_interval_times_misses() {
        let t0 = Instant::now();
        let mut beat = Heartbeat::new(Duration::from_secs(2), 3, t0);
        assert_eq!(beat.poll(t0 + Duration::from_secs(2)), Beat::Ping);
        assert_eq!(beat.poll(t0 + Duration::from_secs(4)), Beat::Ping);
        assert_eq!(
            beat.poll(t0 + Duration::from_millis(5_000)),
            Beat::WaitUntil(t0 + Duration::from_secs(6))
        );
        assert_eq!(beat.poll(t0 + Duration::from_secs(6)), Beat::Dead);
    }

    #[test]
    fn zero_settings_are_raised_to_the_minimum() {
        let t0 = Instant::now();
        let mut beat = Heartbeat::new(Duration::ZERO, 0, t0);
        assert_eq!(beat.limit(), Duration::from_millis(1));
        assert_eq!(beat.poll(t0 + Duration::from_millis(1)), Beat::Dead);
    }
}
