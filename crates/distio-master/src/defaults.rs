//! Default timeout and catch-all settings, and how they combine with a request's metadata.

use distio_proto::Metadata;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crate::Timeout;

/// `Timeout::Inherit`, stored.
const INHERIT: u64 = u64::MAX;
/// `Timeout::Never`, stored.
const NEVER: u64 = u64::MAX - 1;
/// The longest `Timeout::After` stored as such (longer ones are capped here: centuries).
const LONGEST: u64 = u64::MAX - 2;

/// A default timeout and catch-all flag that can be changed while requests are in flight.
#[derive(Debug)]
pub(crate) struct Defaults {
    /// Nanoseconds, or `INHERIT` or `NEVER`.
    timeout: AtomicU64,
    /// 0 unset, 1 false, 2 true.
    catch_all: AtomicU8,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout: AtomicU64::new(INHERIT),
            catch_all: AtomicU8::new(0),
        }
    }
}

impl Defaults {
    pub(crate) fn timeout(&self) -> Timeout {
        match self.timeout.load(Ordering::Relaxed) {
            INHERIT => Timeout::Inherit,
            NEVER => Timeout::Never,
            nanos => Timeout::After(Duration::from_nanos(nanos)),
        }
    }

    pub(crate) fn set_timeout(&self, timeout: Timeout) {
        let raw = match timeout {
            Timeout::Inherit => INHERIT,
            Timeout::Never => NEVER,
            Timeout::After(t) => u64::try_from(t.as_nanos()).map_or(LONGEST, |n| n.min(LONGEST)),
        };
        self.timeout.store(raw, Ordering::Relaxed);
    }

    pub(crate) fn catch_all(&self) -> Option<bool> {
        match self.catch_all.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(false),
            _ => Some(true),
        }
    }

    pub(crate) fn set_catch_all(&self, catch_all: Option<bool>) {
        let raw = match catch_all {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        };
        self.catch_all.store(raw, Ordering::Relaxed);
    }
}

/// The settings in force for one request: the most specific level that sets a value wins
/// (request, then slave, then master). `timeout` is `None` for no timeout (the wire's
/// "none"); `Some(Duration::ZERO)` times out at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Effective {
    pub(crate) timeout: Option<Duration>,
    pub(crate) catch_all: bool,
}

impl Effective {
    pub(crate) fn resolve(
        timeout: Timeout,
        meta: &Metadata,
        slave: &Defaults,
        master: &Defaults,
    ) -> Self {
        let timeout = timeout.or(slave.timeout()).or(master.timeout()).limit();
        let catch_all = meta
            .catch_all
            .or_else(|| slave.catch_all())
            .or_else(|| master.catch_all())
            .unwrap_or(false);
        Effective { timeout, catch_all }
    }

    /// Writes the settings into the metadata sent to the slave.
    pub(crate) fn apply(self, meta: &mut Metadata) {
        meta.timeout = self.timeout;
        meta.catch_all = Some(self.catch_all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    fn after(s: u64) -> Timeout {
        Timeout::After(Duration::from_secs(s))
    }

    #[test]
    fn most_specific_level_wins() {
        let (slave, master) = (Defaults::default(), Defaults::default());
        let none = Metadata::new();
        assert_eq!(
            Effective::resolve(Timeout::Inherit, &none, &slave, &master),
            Effective {
                timeout: None,
                catch_all: false
            }
        );
        master.set_timeout(after(3));
        master.set_catch_all(Some(true));
        assert_eq!(
            Effective::resolve(Timeout::Inherit, &none, &slave, &master),
            Effective {
                timeout: secs(3),
                catch_all: true
            }
        );
        slave.set_timeout(after(4));
        slave.set_catch_all(Some(false));
        assert_eq!(
            Effective::resolve(Timeout::Inherit, &none, &slave, &master),
            Effective {
                timeout: secs(4),
                catch_all: false
            }
        );
        let req = Metadata::new().with_catch_all(true);
        assert_eq!(
            Effective::resolve(after(5), &req, &slave, &master),
            Effective {
                timeout: secs(5),
                catch_all: true
            }
        );
    }

    #[test]
    fn never_overrides_and_zero_is_a_zero_timeout() {
        let (slave, master) = (Defaults::default(), Defaults::default());
        let none = Metadata::new();
        master.set_timeout(after(3));
        slave.set_timeout(Timeout::Never);
        assert_eq!(slave.timeout(), Timeout::Never);
        assert_eq!(
            Effective::resolve(Timeout::Inherit, &none, &slave, &master).timeout,
            None
        );
        slave.set_timeout(Timeout::Inherit);
        assert_eq!(
            Effective::resolve(Timeout::Never, &none, &slave, &master).timeout,
            None
        );
        let zero = Timeout::After(Duration::ZERO);
        assert_eq!(
            Effective::resolve(zero, &none, &slave, &master).timeout,
            Some(Duration::ZERO)
        );
        master.set_timeout(zero);
        assert_eq!(master.timeout(), zero);
    }

    #[test]
    fn huge_timeouts_do_not_wrap() {
        let d = Defaults::default();
        d.set_timeout(Timeout::After(Duration::MAX));
        assert!(d.timeout().limit().unwrap() > Duration::from_secs(100 * 365 * 24 * 3600));
    }
}
