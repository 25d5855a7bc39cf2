//! How a master keeps its session with a host alive: the heartbeat that finds a dead host,
//! and how long a dropped link may take to resume.

use std::time::Duration;

/// How the master watches its session with a host, and how long it tries to resume a
/// dropped link before it gives the host up.
///
/// The master pings the host every `heartbeat_interval`; a host it has heard nothing from
/// for `heartbeat_interval × heartbeat_misses` is taken for gone. With a `resume_window`
/// above zero, a dropped link is first redialled for up to that long (the server keeps the
/// session for its own grace); with zero, the host is given up at once.
///
/// ```
/// use distio_master::{Host, LinkSettings};
/// use std::time::Duration;
///
/// let quick = LinkSettings {
///     heartbeat_interval: Duration::from_millis(500),
///     heartbeat_misses: 4,
///     ..LinkSettings::default()
/// };
/// assert_eq!(quick.dead_after(), Duration::from_secs(2));
/// let host = Host::parse("ws://node1:1337")?.with_link(quick);
/// assert_eq!(host.link(), quick);
/// # Ok::<(), distio_master::MasterError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkSettings {
    /// How often the master pings a quiet host. Default 2 s.
    pub heartbeat_interval: Duration,
    /// How many intervals may pass without a word before the host is taken for gone.
    /// Default 4.
    pub heartbeat_misses: u32,
    /// How long the master tries to resume a dropped link before it fails the host's
    /// pending requests. Default 10 s; zero turns resuming off.
    pub resume_window: Duration,
}

impl LinkSettings {
    /// The default heartbeat interval.
    pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
    /// The default number of missed intervals.
    pub const DEFAULT_HEARTBEAT_MISSES: u32 = 4;
    /// The default resume window.
    pub const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(10);

    /// How long a silent host is given before it is taken for gone: the interval times
    /// the misses (at least a millisecond, at least one miss).
    pub fn dead_after(&self) -> Duration {
        self.heartbeat_interval
            .max(Duration::from_millis(1))
            .saturating_mul(self.heartbeat_misses.max(1))
    }
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            heartbeat_interval: Self::DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_misses: Self::DEFAULT_HEARTBEAT_MISSES,
            resume_window: Self::DEFAULT_RESUME_WINDOW,
        }
    }
}
