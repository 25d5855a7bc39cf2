//! The `[admission]` table: limits that hold before a connection has authenticated.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// Limits against password guessing and connection exhaustion, applied before a
/// connection has authenticated. The defaults hold on a 2-core machine; `docs/serve.md`
/// lists each key.
///
/// ```
/// let config: distio_serve::ServeConfig =
///     toml::from_str("[admission]\nhandshake_timeout = \"5s\"\nmax_unauthenticated = 16")?;
/// assert_eq!(config.admission.handshake_timeout, std::time::Duration::from_secs(5));
/// assert_eq!(config.admission.max_unauthenticated, 16);
/// assert_eq!(config.admission.penalty_after_failures, 5);
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// How long a connection has, from accept, for the TLS handshake, the HTTP upgrade and
    /// authentication together; then it is closed. Default 10 s.
    #[serde(with = "duration::required")]
    pub handshake_timeout: Duration,
    /// Most connections at once that have not authenticated yet; more are closed at accept.
    /// Default 64.
    pub max_unauthenticated: usize,
    /// Most such connections from one address (an IPv6 /64 counts as one). Default 8.
    pub max_unauthenticated_per_address: usize,
    /// Failed authentications from one address before it is penalised. Default 5.
    pub penalty_after_failures: u32,
    /// The first penalty: the address is refused without a check for this long. Each
    /// further failure after it doubles it. Default 10 s.
    #[serde(with = "duration::required")]
    pub penalty_initial: Duration,
    /// The longest penalty. Default 15 min.
    #[serde(with = "duration::required")]
    pub penalty_max: Duration,
    /// An address without a failure for this long is forgotten (its count starts over).
    /// Default 15 min.
    #[serde(with = "duration::required")]
    pub penalty_forget_after: Duration,
    /// How many addresses are remembered at most; the one seen longest ago goes first.
    /// Default 4096.
    pub penalty_table_size: usize,
    /// Refusal log lines per address per minute; more are counted, and the count is given
    /// with the next line. Default 5.
    pub refusal_logs_per_minute: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_unauthenticated: 64,
            max_unauthenticated_per_address: 8,
            penalty_after_failures: 5,
            penalty_initial: Duration::from_secs(10),
            penalty_max: Duration::from_secs(15 * 60),
            penalty_forget_after: Duration::from_secs(15 * 60),
            penalty_table_size: 4096,
            refusal_logs_per_minute: 5,
        }
    }
}
