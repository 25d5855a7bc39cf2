//! Admission: what a connection may do before it has authenticated.
//!
//! The server's accept loop asks the [`Gate`] for every TCP connection it accepts. The gate
//! keeps, per source address (an IPv6 /64 counts as one address):
//!
//! - a cap on connections that have not authenticated yet, globally and per address: over
//!   it, the connection is closed at accept, before any TLS or HTTP work;
//! - a count of failed authentications: after `penalty_after_failures` of them the address
//!   is refused for `penalty_initial`, doubled per further failure up to `penalty_max`, and
//!   forgotten after `penalty_forget_after` without a failure. A penalised address is
//!   answered `429 Too Many Requests` without its credentials being looked at;
//! - a limit on refusal log lines (`refusal_logs_per_minute`; the suppressed ones are
//!   counted and reported with the next line).
//!
//! Every admitted connection gets an [`Admission`] ticket and a deadline
//! (`handshake_timeout`): the TLS handshake, the HTTP upgrade and authentication must be
//! done by then, or the connection is closed.
//!
//! # Wiring an authentication method to it
//!
//! The ticket is in the extensions of every request of the connection
//! (`Extension<Admission>` in a handler or middleware). Whatever authenticates a client
//! calls, on the ticket:
//!
//! - [`Admission::penalty`] first: if it is `Some`, refuse at once with
//!   [`Refusal::Penalised`] without checking anything (basic auth answers 429);
//! - [`Admission::authenticated`] the moment the client has proved who it is: the deadline
//!   no longer applies and the connection's place among the unauthenticated ones is freed;
//! - [`Admission::refused`] with the [`Refusal`] when it refuses the client; a
//!   [`Refusal::BadCredentials`] counts towards the address's penalty. It writes the one
//!   structured log line per refusal (`peer`, `reason`, the sanitized `user`).
//!
//! Basic authentication does this in its middleware. An authentication that happens inside
//! the WebSocket (a passphrase handshake) takes the ticket from the upgrade request into the
//! session, must finish by [`Admission::deadline`] (the accept loop's deadline only covers
//! the connection until the upgrade), and calls `authenticated()` when its key confirmation
//! succeeds, or `refused(Refusal::BadCredentials, None)` when it fails. The upgrade handler
//! calls `authenticated()` itself only when no authentication is configured.
//!
//! ```
//! use distio_serve::admission::{Gate, Refusal};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let gate = Gate::new(distio_serve::AdmissionConfig::default());
//! let ticket = gate.admit("127.0.0.1:40000".parse().unwrap()).unwrap();
//! assert!(ticket.penalty().is_none());
//! ticket.refused(Refusal::BadCredentials, Some(b"ops"));
//! ticket.authenticated();
//! assert!(ticket.is_authenticated());
//! # }
//! ```

mod layer;
mod table;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

pub use layer::require_unpenalised;
use table::{Key, LogDecision, Table};

use crate::AdmissionConfig;

/// Why a connection was refused, as logged (`reason = …`).
///
/// ```
/// assert_eq!(distio_serve::admission::Refusal::Penalised.as_str(), "penalised");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No credentials were sent.
    Missing,
    /// The credentials are wrong or malformed. Counts towards a penalty.
    BadCredentials,
    /// The address is not in `authorized_ips`.
    NotAllowed,
    /// The address is penalised for earlier failures.
    Penalised,
    /// Too many connections have not authenticated yet (globally or from the address).
    TooManyUnauthenticated,
    /// The handshake, upgrade and authentication were not done by the deadline.
    Deadline,
    /// The TLS handshake failed (no or a bad client certificate, not TLS at all, …).
    Tls,
}

impl Refusal {
    /// The name written in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::BadCredentials => "bad_credentials",
            Refusal::NotAllowed => "not_allowed",
            Refusal::Penalised => "penalised",
            Refusal::TooManyUnauthenticated => "too_many_unauthenticated",
            Refusal::Deadline => "deadline",
            Refusal::Tls => "tls",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server's admission state: one per server, cheap to clone.
///
/// ```
/// let gate = distio_serve::admission::Gate::new(distio_serve::AdmissionConfig::default());
/// # drop(gate);
/// ```
#[derive(Clone)]
pub struct Gate {
    table: Arc<Mutex<Table>>,
    handshake_timeout: Duration,
    /// Where refusals are counted by reason (the admin `/metrics`), if anywhere.
    metrics: Option<crate::admin::Metrics>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate with these limits.
    pub fn new(config: AdmissionConfig) -> Self {
        Self {
            handshake_timeout: config.handshake_timeout,
            table: Arc::new(Mutex::new(Table::new(config))),
            metrics: None,
        }
    }

    /// Counts every refusal in `metrics` (`distio_serve_auth_refusals_total{reason}`),
    /// whether or not its log line is written.
    #[must_use]
    pub fn with_metrics(mut self, metrics: crate::admin::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent between statements: a panic elsewhere cannot break it.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a connection just accepted from `peer`, or refuses it (and logs why) when too
    /// many connections have not authenticated yet.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let gate = distio_serve::admission::Gate::new(distio_serve::AdmissionConfig {
    ///     max_unauthenticated_per_address: 1,
    ///     ..Default::default()
    /// });
    /// let peer = "127.0.0.1:5000".parse().unwrap();
    /// let first = gate.admit(peer).unwrap();
    /// assert!(gate.admit(peer).is_none());
    /// first.authenticated();
    /// assert!(gate.admit(peer).is_some());
    /// # }
    /// ```
    pub fn admit(&self, peer: SocketAddr) -> Option<Admission> {
        let key = Key::of(peer.ip());
        if !self.lock().try_enter(key) {
            self.log_refusal(peer, key, Refusal::TooManyUnauthenticated, None);
            return None;
        }
        Some(Admission(Arc::new(Ticket {
            gate: self.clone(),
            peer,
            key,
            deadline: Instant::now() + self.handshake_timeout,
            authenticated: AtomicBool::new(false),
        })))
    }

    /// Writes the refusal line unless the address's or the global limit is reached.
    fn log_refusal(&self, peer: SocketAddr, key: Key, reason: Refusal, user: Option<&[u8]>) {
        if let Some(metrics) = &self.metrics {
            metrics.auth_refused(reason.into());
        }
        let decision = self.lock().may_log(key, Instant::now());
        if let LogDecision::Write { suppressed } = decision {
            let user = user.map(sanitize_user);
            tracing::warn!(
                peer = %peer,
                reason = reason.as_str(),
                user = user.as_deref(),
                suppressed,
                "connection refused"
            );
        }
    }
}

/// A connection's admission, from accept until it has authenticated or closed. Clones share
/// it. See the [module documentation](self) for how an authentication method uses it.
#[derive(Clone)]
pub struct Admission(Arc<Ticket>);

struct Ticket {
    gate: Gate,
    peer: SocketAddr,
    key: Key,
    deadline: Instant,
    authenticated: AtomicBool,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("peer", &self.0.peer)
            .field("authenticated", &self.is_authenticated())
            .finish()
    }
}

impl Admission {
    /// The connection's peer (the TCP peer: forwarded-for headers are not looked at).
    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }

    /// When the handshake, upgrade and authentication must be done.
    pub fn deadline(&self) -> Instant {
        self.0.deadline
    }

    /// How long the peer's address is still penalised, if it is: refuse it with
    /// [`Refusal::Penalised`] without checking its credentials.
    pub fn penalty(&self) -> Option<Duration> {
        self.0.gate.lock().penalty(self.0.key, Instant::now())
    }

    /// The client has authenticated: the deadline no longer applies, its place among the
    /// unauthenticated connections is free, and its address's failures are forgotten.
    /// Calling it again does nothing.
    pub fn authenticated(&self) {
        if !self.0.authenticated.swap(true, Ordering::AcqRel) {
            let mut table = self.0.gate.lock();
            table.leave(self.0.key);
            table.succeeded(self.0.key);
        }
    }

    /// Whether [`authenticated`](Self::authenticated) was called.
    pub fn is_authenticated(&self) -> bool {
        self.0.authenticated.load(Ordering::Acquire)
    }

    /// The client is refused: logs one line (`peer`, `reason`, the user name sanitized —
    /// never a password), rate-limited per address; [`Refusal::BadCredentials`] counts
    /// towards the address's penalty.
    pub fn refused(&self, reason: Refusal, user: Option<&[u8]>) {
        let ticket = &self.0;
        if reason == Refusal::BadCredentials
            && let Some(penalty) = ticket.gate.lock().failed(ticket.key, Instant::now())
        {
            tracing::debug!(peer = %ticket.peer, ?penalty, "address penalised");
        }
        ticket
            .gate
            .log_refusal(ticket.peer, ticket.key, reason, user);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !*self.authenticated.get_mut() {
            self.gate.lock().leave(self.key);
        }
    }
}

/// A user name as it may be logged: printable ASCII only (others become `?`), at most 32
/// characters.
fn sanitize_user(user: &[u8]) -> String {
    const MAX: usize = 32;
    let mut out: String = user
        .iter()
        .take(MAX)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect();
    if user.len() > MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_sanitized_and_truncated() {
        assert_eq!(sanitize_user(b"ops"), "ops");
        assert_eq!(sanitize_user(b"a\nb\x1b[31m\xff"), "a?b?[31m?");
        let long = sanitize_user(&[b'x'; 100]);
        assert_eq!(long.len(), 35);
    }

    #[tokio::test]
    async fn a_dropped_ticket_frees_its_place() {
        let gate = Gate::new(AdmissionConfig {
            max_unauthenticated: 1,
            ..AdmissionConfig::default()
        });
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let ticket = gate.admit(peer).unwrap();
        let clone = ticket.clone();
        assert!(gate.admit(peer).is_none());
        drop(ticket);
        assert!(gate.admit(peer).is_none(), "a clone still holds it");
        drop(clone);
        assert!(gate.admit(peer).is_some());
    }

    #[tokio::test]
    async fn bad_credentials_lead_to_a_penalty_for_that_address_only() {
        let gate = Gate::new(AdmissionConfig {
            penalty_after_failures: 2,
            ..AdmissionConfig::default()
        });
        let a = gate.admit("10.0.0.1:1".parse().unwrap()).unwrap();
        a.refused(Refusal::BadCredentials, Some(b"x"));
        assert!(a.penalty().is_none());
        a.refused(Refusal::Missing, None);
        assert!(a.penalty().is_none(), "a missing header is not a guess");
        a.refused(Refusal::BadCredentials, Some(b"x"));
        assert!(a.penalty().is_some());
        let b = gate.admit("10.0.0.2:1".parse().unwrap()).unwrap();
        assert!(b.penalty().is_none());
    }
}
