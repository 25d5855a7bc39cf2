//! Default timeout and catch-all settings, and how they combine with a request's metadata.

use distio_proto::Metadata;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

const UNSET: u64 = u64::MAX;

/// A default timeout and catch-all flag that can be changed while requests are in flight.
#[derive(Debug)]
pub(crate) struct Defaults {
    /// Nanoseconds, or `UNSET`.
    timeout: AtomicU64,
    /// 0 unset, 1 false, 2 true.
    catch_all: AtomicU8,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout: AtomicU64::new(UNSET),
            catch_all: AtomicU8::new(0),
        }
    }
}

impl Defaults {
    pub(crate) fn timeout(&self) -> Option<Duration> {
        match self.timeout.load(Ordering::Relaxed) {
            UNSET => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    pub(crate) fn set_timeout(&self, timeout: Option<Duration>) {
        let nanos = timeout.map_or(UNSET, |t| u64::try_from(t.as_nanos()).unwrap_or(UNSET - 1));
        self.timeout.store(nanos, Ordering::Relaxed);
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
/// (request, then slave, then master). A zero timeout means none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Effective {
    pub(crate) timeout: Option<Duration>,
    pub(crate) catch_all: bool,
}

impl Effective {
    pub(crate) fn resolve(meta: &Metadata, slave: &Defaults, master: &Defaults) -> Self {
        let timeout = meta
            .timeout
            .or_else(|| slave.timeout())
            .or_else(|| master.timeout())
            .filter(|t| !t.is_zero());
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

    #[test]
    fn most_specific_level_wins() {
        let (slave, master) = (Defaults::default(), Defaults::default());
        let none = Metadata::new();
        assert_eq!(
            Effective::resolve(&none, &slave, &master),
            Effective {
                timeout: None,
                catch_all: false
            }
        );
        master.set_timeout(secs(3));
        master.set_catch_all(Some(true));
        assert_eq!(
            Effective::resolve(&none, &slave, &master),
            Effective {
                timeout: secs(3),
                catch_all: true
            }
        );
        slave.set_timeout(secs(4));
        slave.set_catch_all(Some(false));
        assert_eq!(
            Effective::resolve(&none, &slave, &master),
            Effective {
                timeout: secs(4),
                catch_all: false
            }
        );
        let req = Metadata::new()
            .with_timeout(Duration::from_secs(5))
            .with_catch_all(true);
        assert_eq!(
            Effective::resolve(&req, &slave, &master),
            Effective {
                timeout: secs(5),
                catch_all: true
            }
        );
    }

    #[test]
    fn zero_means_no_timeout_and_overrides() {
        let (slave, master) = (Defaults::default(), Defaults::default());
        master.set_timeout(secs(3));
        slave.set_timeout(Some(Duration::ZERO));
        assert_eq!(
            Effective::resolve(&Metadata::new(), &slave, &master).timeout,
            None
        );
        slave.set_timeout(None);
        let req = Metadata::new().with_timeout(Duration::ZERO);
        assert_eq!(Effective::resolve(&req, &slave, &master).timeout, None);
    }

    #[test]
    fn huge_timeouts_do_not_wrap() {
        let d = Defaults::default();
        d.set_timeout(Some(Duration::MAX));
        assert!(d.timeout().unwrap() > Duration::from_secs(100 * 365 * 24 * 3600));
    }
}
