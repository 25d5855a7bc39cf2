//! The server's metrics: a `prometheus-client` registry and its families, with one
//! method per event the server counts.
//!
//! Every name starts with `distio_serve_`. Counters that the relay bumps per frame are
//! plain atomics taken out of their families once, at start: counting a frame is one
//! relaxed `fetch_add`, with no lock and no allocation.

use distio_proto::remote::{ExitCause, SpawnFailure};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// One label: its name and its value.
type Label = [(&'static str, &'static str); 1];
/// Two labels.
type Labels2 = [(&'static str, &'static str); 2];

/// Why a connection was refused before it became a session: the `reason` label of
/// `distio_serve_auth_refusals_total`.
///
/// ```
/// use distio_serve::admin::{AuthRefusal, Metrics};
/// let metrics = Metrics::new();
/// metrics.auth_refused(AuthRefusal::BadCredentials);
/// assert!(metrics.encode().contains(r#"distio_serve_auth_refusals_total{reason="bad_credentials"} 1"#));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthRefusal {
    /// No credentials were presented where they are required.
    Missing,
    /// The credentials presented are wrong (or malformed).
    BadCredentials,
    /// The peer's address is not allowed (`authorized_ips`).
    NotAllowed,
    /// The peer is being penalised for earlier failures.
    Penalised,
    /// Too many connections have not authenticated yet.
    TooManyUnauthenticated,
    /// The peer did not authenticate within the deadline.
    Deadline,
    /// The TLS handshake failed.
    Tls,
    /// The session's passphrase check failed.
    Passphrase,
}

impl AuthRefusal {
    /// The label value.
    ///
    /// ```
    /// assert_eq!(distio_serve::admin::AuthRefusal::NotAllowed.as_str(), "not_allowed");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AuthRefusal::Missing => "missing",
            AuthRefusal::BadCredentials => "bad_credentials",
            AuthRefusal::NotAllowed => "not_allowed",
            AuthRefusal::Penalised => "penalised",
            AuthRefusal::TooManyUnauthenticated => "too_many_unauthenticated",
            AuthRefusal::Deadline => "deadline",
            AuthRefusal::Tls => "tls",
            AuthRefusal::Passphrase => "passphrase",
        }
    }
}

/// The `reason` label of a spawn the server did not start, and whether it was refused
/// (`outcome="refused"`: the request could not be met) or failed (`outcome="failed"`: the
/// server could not start it).
pub(crate) fn spawn_failure_labels(kind: SpawnFailure) -> Labels2 {
    let reason = match kind {
        SpawnFailure::NoSuchScript => "no_such_script",
        SpawnFailure::NotExecutable => "not_executable",
        SpawnFailure::OutsideRoot => "outside_root",
        SpawnFailure::Invalid => "invalid",
        SpawnFailure::QueueFull => "queue_full",
        SpawnFailure::QueueTimeout => "queue_timeout",
        SpawnFailure::Cancelled => "cancelled",
        SpawnFailure::ServerStopping => "server_stopping",
        SpawnFailure::StartFailed => "start_failed",
        _ => "other",
    };
    let outcome = if kind == SpawnFailure::StartFailed {
        "failed"
    } else {
        "refused"
    };
    [("outcome", outcome), ("reason", reason)]
}

/// The `reason` label of an ended slave.
pub(crate) fn exit_reason(cause: ExitCause, by_operator: bool) -> &'static str {
    if by_operator {
        return "operator";
    }
    match cause {
        ExitCause::Exited => "exit",
        ExitCause::Killed => "killed",
        ExitCause::LifetimeLimit => "lifetime",
        ExitCause::SessionEnded => "session_ended",
        ExitCause::ServerStopping => "server_stopping",
        _ => "other",
    }
}

impl From<crate::admission::Refusal> for AuthRefusal {
    fn from(refusal: crate::admission::Refusal) -> Self {
        use crate::admission::Refusal;
        match refusal {
            Refusal::Missing => AuthRefusal::Missing,
            Refusal::BadCredentials => AuthRefusal::BadCredentials,
            Refusal::NotAllowed => AuthRefusal::NotAllowed,
            Refusal::Penalised => AuthRefusal::Penalised,
            Refusal::TooManyUnauthenticated => AuthRefusal::TooManyUnauthenticated,
            Refusal::Deadline => AuthRefusal::Deadline,
            Refusal::Tls => AuthRefusal::Tls,
        }
    }
}

/// The server's metric families. Cheap to clone (every metric is shared).
///
/// Read them with [`encode`](Self::encode) (what `/metrics` serves).
///
/// ```
/// let metrics = distio_serve::admin::Metrics::new();
/// let text = metrics.encode();
/// assert!(text.contains("# TYPE distio_serve_sessions_open gauge"));
/// assert!(text.ends_with("# EOF\n"));
/// ```
#[derive(Clone)]
pub struct Metrics {
    registry: std::sync::Arc<Registry>,
    pub(crate) sessions_open: Gauge,
    sessions_total: Counter,
    pub(crate) slaves_running: Gauge,
    pub(crate) slaves_queued: Gauge,
    pub(crate) slaves_capacity: Gauge,
    spawns: Family<Labels2, Counter>,
    slaves_ended: Family<Label, Counter>,
    auth_refusals: Family<Label, Counter>,
    /// Frames from the master to a slave.
    frames_in: Counter,
    /// Frames from a slave to the master.
    frames_out: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    queue_wait: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The direction label values.
const TO_SLAVE: Label = [("direction", "master_to_slave")];
const TO_MASTER: Label = [("direction", "slave_to_master")];

impl Metrics {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("distio_serve");
        let sessions_open = Gauge::default();
        registry.register(
            "sessions_open",
            "Sessions connected now",
            sessions_open.clone(),
        );
        let sessions_total = Counter::default();
        registry.register(
            "sessions",
            "Sessions accepted since the server started",
            sessions_total.clone(),
        );
        let slaves_running = Gauge::default();
        registry.register(
            "slaves_running",
            "Slave places taken now",
            slaves_running.clone(),
        );
        let slaves_queued = Gauge::default();
        registry.register(
            "slaves_queued",
            "Spawns waiting for a place now",
            slaves_queued.clone(),
        );
        let slaves_capacity = Gauge::default();
        registry.register(
            "slaves_capacity",
            "How many slaves may run at once (max_concurrent_slaves)",
            slaves_capacity.clone(),
        );
        let spawns = Family::<Labels2, Counter>::default();
        registry.register(
            "spawns",
            "Spawn requests by outcome (started, refused, failed) and reason",
            spawns.clone(),
        );
        let slaves_ended = Family::<Label, Counter>::default();
        registry.register(
            "slaves_ended",
            "Slaves that ended, by reason (exit, killed, lifetime, session_ended, server_stopping, operator)",
            slaves_ended.clone(),
        );
        let auth_refusals = Family::<Label, Counter>::default();
        registry.register(
            "auth_refusals",
            "Connections refused before a session, by reason",
            auth_refusals.clone(),
        );
        let frames = Family::<Label, Counter>::default();
        registry.register(
            "frames_relayed",
            "Slave frames relayed, by direction",
            frames.clone(),
        );
        let bytes = Family::<Label, Counter>::default();
        registry.register(
            "frame_bytes_relayed",
            "Bytes of slave frame bodies relayed, by direction",
            bytes.clone(),
        );
        let queue_wait = Histogram::new(exponential_buckets(0.001, 4.0, 10));
        registry.register_with_unit(
            "spawn_queue_wait",
            "How long a spawn waited for a slave place",
            prometheus_client::registry::Unit::Seconds,
            queue_wait.clone(),
        );
        Metrics {
            frames_in: frames.get_or_create_owned(&TO_SLAVE),
            frames_out: frames.get_or_create_owned(&TO_MASTER),
            bytes_in: bytes.get_or_create_owned(&TO_SLAVE),
            bytes_out: bytes.get_or_create_owned(&TO_MASTER),
            registry: std::sync::Arc::new(registry),
            sessions_open,
            sessions_total,
            slaves_running,
            slaves_queued,
            slaves_capacity,
            spawns,
            slaves_ended,
            auth_refusals,
            queue_wait,
        }
    }

    /// Counts a connection refused before it became a session.
    ///
    /// ```
    /// let metrics = distio_serve::admin::Metrics::new();
    /// metrics.auth_refused(distio_serve::admin::AuthRefusal::Tls);
    /// ```
    pub fn auth_refused(&self, reason: AuthRefusal) {
        self.auth_refusals
            .get_or_create(&[("reason", reason.as_str())])
            .inc();
    }

    /// The metrics in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    pub(crate) fn session_started(&self) {
        self.sessions_total.inc();
    }

    /// A spawn got its place after waiting `waited`.
    pub(crate) fn queue_waited(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    pub(crate) fn spawn_started(&self) {
        self.spawns
            .get_or_create(&[("outcome", "started"), ("reason", "")])
            .inc();
    }

    pub(crate) fn spawn_refused(&self, kind: SpawnFailure) {
        self.spawns.get_or_create(&spawn_failure_labels(kind)).inc();
    }

    pub(crate) fn slave_ended(&self, reason: &'static str) {
        self.slaves_ended.get_or_create(&[("reason", reason)]).inc();
    }

    /// One frame of `len` body bytes from the master to a slave.
    #[inline]
    pub(crate) fn frame_to_slave(&self, len: usize) {
        self.frames_in.inc();
        self.bytes_in.inc_by(len as u64);
    }

    /// One frame of `len` body bytes from a slave to the master.
    #[inline]
    pub(crate) fn frame_to_master(&self, len: usize) {
        self.frames_out.inc();
        self.bytes_out.inc_by(len as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_encoded_with_its_labels() {
        let m = Metrics::new();
        m.spawn_started();
        m.spawn_refused(SpawnFailure::QueueFull);
        m.spawn_refused(SpawnFailure::StartFailed);
        m.slave_ended(exit_reason(ExitCause::LifetimeLimit, false));
        m.slave_ended(exit_reason(ExitCause::Exited, true));
        m.frame_to_slave(10);
        m.frame_to_master(7);
        m.frame_to_master(3);
        m.queue_waited(Duration::from_millis(3));
        m.auth_refused(AuthRefusal::Missing);
        let text = m.encode();
        for line in [
            r#"distio_serve_spawns_total{outcome="started",reason=""} 1"#,
            r#"distio_serve_spawns_total{outcome="refused",reason="queue_full"} 1"#,
            r#"distio_serve_spawns_total{outcome="failed",reason="start_failed"} 1"#,
            r#"distio_serve_slaves_ended_total{reason="lifetime"} 1"#,
            r#"distio_serve_slaves_ended_total{reason="operator"} 1"#,
            r#"distio_serve_frames_relayed_total{direction="master_to_slave"} 1"#,
            r#"distio_serve_frames_relayed_total{direction="slave_to_master"} 2"#,
            r#"distio_serve_frame_bytes_relayed_total{direction="slave_to_master"} 10"#,
            r#"distio_serve_auth_refusals_total{reason="missing"} 1"#,
            "distio_serve_spawn_queue_wait_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
