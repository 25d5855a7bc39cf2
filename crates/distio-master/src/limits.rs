//! The bounds every slave link lives within, and their defaults.

use std::time::Duration;

/// Requests one slave may have unanswered at once, by default (see
/// [`SpawnOptions::max_in_flight`](crate::SpawnOptions::max_in_flight)). Requests beyond it
/// wait, first come first served, for an answer to free a place; their timeouts run
/// meanwhile.
///
/// ```
/// assert!(distio_master::DEFAULT_MAX_IN_FLIGHT >= 1024);
/// ```
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16 * 1024;

/// Bytes of frames queued for one slave and not yet taken by its socket, by default (see
/// [`SpawnOptions::outbox_limit`](crate::SpawnOptions::outbox_limit)). Once a slave stops
/// reading and this much is queued, new requests wait (unencoded, first come first served)
/// until it drains below the limit; frames of requests that time out or are dropped meanwhile are never sent.
///
/// ```
/// assert_eq!(distio_master::DEFAULT_OUTBOX_LIMIT, 8 * 1024 * 1024);
/// ```
pub const DEFAULT_OUTBOX_LIMIT: usize = 8 * 1024 * 1024;

/// How long [`Slave::shutdown`](crate::Slave::shutdown) waits for the slave to finish its
/// pending requests and exit, by default, before it falls back to
/// [`Slave::close`](crate::Slave::close).
///
/// ```
/// assert_eq!(distio_master::DEFAULT_SHUTDOWN_GRACE.as_secs(), 30);
/// ```
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long [`Slave::ping`](crate::Slave::ping) waits for the answer.
///
/// ```
/// assert_eq!(distio_master::PING_TIMEOUT.as_secs(), 10);
/// ```
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`Slave::ready`](crate::Slave::ready) waits for the slave's handshake.
///
/// ```
/// assert_eq!(distio_master::READY_TIMEOUT.as_secs(), 60);
/// ```
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The per-slave limits a [`SpawnOptions`](crate::SpawnOptions) carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_in_flight: usize,
    pub(crate) outbox_limit: usize,
    pub(crate) shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            outbox_limit: DEFAULT_OUTBOX_LIMIT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}
