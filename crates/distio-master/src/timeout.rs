//! [`Timeout`]: how long a request may take, or where that comes from.

use std::time::Duration;

/// How long a request may take before it resolves with a `TimedOut` error, at one level:
/// a request's own ([`Exec::timeout`](crate::Exec::timeout)), a slave's default
/// ([`SpawnOptions::default_timeout`](crate::SpawnOptions::default_timeout),
/// [`Slave::set_default_timeout`](crate::Slave::set_default_timeout)) or the master's
/// ([`Master::set_default_timeout`](crate::Master::set_default_timeout)).
///
/// The most specific level that is not [`Inherit`](Self::Inherit) decides; at the master
/// level (nothing above it), `Inherit` means [`Never`](Self::Never).
///
/// [`After(Duration::ZERO)`](Self::After) is a zero timeout, not "none": the request times
/// out at once, without being sent. Use [`Never`](Self::Never) for no timeout.
///
/// ```
/// use distio_master::Timeout;
/// use std::time::Duration;
///
/// assert_eq!(Timeout::default(), Timeout::Inherit);
/// assert_eq!(Timeout::from(Duration::from_secs(2)), Timeout::After(Duration::from_secs(2)));
/// assert_eq!(Timeout::After(Duration::from_secs(2)).limit(), Some(Duration::from_secs(2)));
/// assert_eq!(Timeout::Never.limit(), None);
/// assert_eq!(Timeout::Inherit.or(Timeout::Never), Timeout::Never);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Timeout {
    /// This level sets nothing: the level above decides (none above the master: no
    /// timeout).
    #[default]
    Inherit,
    /// No timeout, whatever the levels above say.
    Never,
    /// Time out after this long (zero: at once, unsent).
    After(Duration),
}

impl Timeout {
    /// `self`, unless it is [`Inherit`](Self::Inherit): then `above`.
    ///
    /// ```
    /// use distio_master::Timeout;
    /// use std::time::Duration;
    /// let master = Timeout::After(Duration::from_secs(9));
    /// assert_eq!(Timeout::Never.or(master), Timeout::Never);
    /// assert_eq!(Timeout::Inherit.or(master), master);
    /// ```
    #[must_use]
    pub fn or(self, above: Timeout) -> Timeout {
        match self {
            Timeout::Inherit => above,
            set => set,
        }
    }

    /// The limit this level sets, if it sets one (`None` for `Never` and `Inherit`).
    ///
    /// ```
    /// use distio_master::Timeout;
    /// assert_eq!(Timeout::Inherit.limit(), None);
    /// ```
    pub fn limit(self) -> Option<Duration> {
        match self {
            Timeout::After(limit) => Some(limit),
            Timeout::Inherit | Timeout::Never => None,
        }
    }
}

impl From<Duration> for Timeout {
    fn from(limit: Duration) -> Self {
        Timeout::After(limit)
    }
}
