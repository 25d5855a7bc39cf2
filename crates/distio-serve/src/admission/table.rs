//! What the server remembers per source address: failures and penalties, connections not
//! yet authenticated, and how many refusal lines were logged. Bounded in size.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use tokio::time::Instant;

use crate::AdmissionConfig;

/// How addresses are counted: an IPv4 address alone, an IPv6 address by its /64 (one
/// host usually has a whole /64, so counting single IPv6 addresses would be no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key(IpAddr);

impl Key {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                Key(IpAddr::V6(Ipv6Addr::from(bits)))
            }
            v4 => Key(v4),
        }
    }
}

/// One address's record.
#[derive(Debug)]
struct Record {
    last_seen: Instant,
    failures: u32,
    last_failure: Option<Instant>,
    penalised_until: Option<Instant>,
    log_window: Instant,
    logged: u32,
    suppressed: u64,
}

impl Record {
    fn new(now: Instant) -> Self {
        Self {
            last_seen: now,
            failures: 0,
            last_failure: None,
            penalised_until: None,
            log_window: now,
            logged: 0,
            suppressed: 0,
        }
    }
}

/// Whether to write a refusal line, and how many were left out before it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogDecision {
    Write { suppressed: u64 },
    Suppress,
}

/// The per-address state, one lock for all of it.
#[derive(Debug)]
pub(crate) struct Table {
    config: AdmissionConfig,
    records: HashMap<Key, Record>,
    unauthenticated: HashMap<Key, usize>,
    unauthenticated_total: usize,
    global_window: Instant,
    global_logged: u32,
}

const LOG_WINDOW: Duration = Duration::from_secs(60);

impl Table {
    pub(crate) fn new(config: AdmissionConfig) -> Self {
        Self {
            config,
            records: HashMap::new(),
            unauthenticated: HashMap::new(),
            unauthenticated_total: 0,
            global_window: Instant::now(),
            global_logged: 0,
        }
    }

    fn record(&mut self, key: Key, now: Instant) -> &mut Record {
        if !self.records.contains_key(&key) && self.records.len() >= self.config.penalty_table_size
        {
            // Full: forget the address seen longest ago.
            if let Some(oldest) = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.last_seen)
                .map(|(k, _)| *k)
            {
                self.records.remove(&oldest);
            }
        }
        let record = self.records.entry(key).or_insert_with(|| Record::new(now));
        record.last_seen = now;
        if record
            .last_failure
            .is_some_and(|t| now.saturating_duration_since(t) > self.config.penalty_forget_after)
        {
            record.failures = 0;
            record.last_failure = None;
        }
        record
    }

    /// Takes a place for a connection that has not authenticated, if there is one.
    pub(crate) fn try_enter(&mut self, key: Key) -> bool {
        let here = self.unauthenticated.get(&key).copied().unwrap_or(0);
        if self.unauthenticated_total >= self.config.max_unauthenticated
            || here >= self.config.max_unauthenticated_per_address
        {
            return false;
        }
        self.unauthenticated_total += 1;
        *self.unauthenticated.entry(key).or_insert(0) += 1;
        true
    }

    /// Gives back a place taken by [`try_enter`](Self::try_enter).
    pub(crate) fn leave(&mut self, key: Key) {
        self.unauthenticated_total = self.unauthenticated_total.saturating_sub(1);
        if let Some(n) = self.unauthenticated.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.unauthenticated.remove(&key);
            }
        }
    }

    /// How long `key` is still refused, if it is.
    pub(crate) fn penalty(&mut self, key: Key, now: Instant) -> Option<Duration> {
        let until = self.records.get(&key)?.penalised_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failed authentication; returns the penalty it started, if any.
    pub(crate) fn failed(&mut self, key: Key, now: Instant) -> Option<Duration> {
        let threshold = self.config.penalty_after_failures.max(1);
        let (initial, max) = (self.config.penalty_initial, self.config.penalty_max);
        let record = self.record(key, now);
        record.failures = record.failures.saturating_add(1);
        record.last_failure = Some(now);
        let over = record.failures.checked_sub(threshold)?;
        let penalty = initial
            .checked_mul(1u32 << over.min(20))
            .unwrap_or(max)
            .min(max);
        record.penalised_until = Some(now + penalty);
        Some(penalty)
    }

    /// An authentication succeeded: the address's failures are forgotten.
    pub(crate) fn succeeded(&mut self, key: Key) {
        if let Some(record) = self.records.get_mut(&key) {
            record.failures = 0;
            record.last_failure = None;
            record.penalised_until = None;
        }
    }

    /// Whether a refusal line for `key` may be written now.
    pub(crate) fn may_log(&mut self, key: Key, now: Instant) -> LogDecision {
        let per_address = self.config.refusal_logs_per_minute;
        let global = per_address.saturating_mul(20).max(100);
        if now.saturating_duration_since(self.global_window) >= LOG_WINDOW {
            self.global_window = now;
            self.global_logged = 0;
        }
        let global_full = self.global_logged >= global;
        let record = self.record(key, now);
        if now.saturating_duration_since(record.log_window) >= LOG_WINDOW {
            record.log_window = now;
            record.logged = 0;
        }
        if record.logged >= per_address || global_full {
            // Counted for the address, reported with its next line.
            record.suppressed += 1;
            return LogDecision::Suppress;
        }
        record.logged += 1;
        let suppressed = std::mem::take(&mut record.suppressed);
        self.global_logged += 1;
        LogDecision::Write { suppressed }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AdmissionConfig {
        AdmissionConfig {
            penalty_after_failures: 3,
            penalty_initial: Duration::from_secs(10),
            penalty_max: Duration::from_secs(35),
            penalty_forget_after: Duration::from_secs(100),
            penalty_table_size: 4,
            max_unauthenticated: 3,
            max_unauthenticated_per_address: 2,
            refusal_logs_per_minute: 2,
            ..AdmissionConfig::default()
        }
    }

    fn key(text: &str) -> Key {
        Key::of(text.parse().unwrap())
    }

    #[test]
    fn penalty_starts_at_the_threshold_doubles_and_is_capped() {
        let mut t = Table::new(config());
        let now = Instant::now();
        let a = key("10.0.0.1");
        assert_eq!(t.failed(a, now), None);
        assert_eq!(t.failed(a, now), None);
        assert_eq!(t.failed(a, now), Some(Duration::from_secs(10)));
        assert_eq!(t.failed(a, now), Some(Duration::from_secs(20)));
        assert_eq!(t.failed(a, now), Some(Duration::from_secs(35)));
        assert_eq!(t.penalty(a, now), Some(Duration::from_secs(35)));
        assert_eq!(t.penalty(key("10.0.0.2"), now), None, "others unaffected");
        assert_eq!(t.penalty(a, now + Duration::from_secs(36)), None, "it ends");
        // Quiet for longer than forget_after: counting starts over.
        let later = now + Duration::from_secs(200);
        assert_eq!(t.failed(a, later), None);
    }

    #[test]
    fn success_forgets_failures() {
        let mut t = Table::new(config());
        let now = Instant::now();
        let a = key("10.0.0.1");
        t.failed(a, now);
        t.failed(a, now);
        t.succeeded(a);
        assert_eq!(t.failed(a, now), None);
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest() {
        let mut t = Table::new(config());
        let now = Instant::now();
        for i in 0..10u32 {
            t.failed(
                key(&format!("10.0.0.{i}")),
                now + Duration::from_secs(i.into()),
            );
        }
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn ipv6_counts_by_64() {
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:2"));
        assert_ne!(key("2001:db8:0:1::1"), key("2001:db8::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
    }

    #[test]
    fn unauthenticated_caps_global_and_per_address() {
        let mut t = Table::new(config());
        let (a, b, c) = (key("10.0.0.1"), key("10.0.0.2"), key("10.0.0.3"));
        assert!(t.try_enter(a) && t.try_enter(a));
        assert!(!t.try_enter(a), "per address");
        assert!(t.try_enter(b));
        assert!(!t.try_enter(c), "global");
        t.leave(a);
        assert!(t.try_enter(c));
    }

    #[test]
    fn refusal_lines_are_limited_per_address_and_count_what_was_left_out() {
        let mut t = Table::new(config());
        let now = Instant::now();
        let a = key("10.0.0.1");
        assert_eq!(t.may_log(a, now), LogDecision::Write { suppressed: 0 });
        assert_eq!(t.may_log(a, now), LogDecision::Write { suppressed: 0 });
        assert_eq!(t.may_log(a, now), LogDecision::Suppress);
        assert_eq!(t.may_log(a, now), LogDecision::Suppress);
        assert_eq!(
            t.may_log(key("10.0.0.2"), now),
            LogDecision::Write { suppressed: 0 }
        );
        let later = now + LOG_WINDOW;
        assert_eq!(t.may_log(a, later), LogDecision::Write { suppressed: 2 });
    }
}
