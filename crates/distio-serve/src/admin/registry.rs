//! What runs now: the live sessions and slaves, for `distio-serve list` and `kill`.
//!
//! A session or slave is entered when it starts and removed when its entry (a guard the
//! session or slave task owns) is dropped, so nothing stays listed after its task ends,
//! however it ends.

use distio_master::Signal;
use distio_master::hosted::Signaller;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

use super::Admin;
use super::procstat;

/// One session, as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// The server's number for the session (1, 2, ... since it started).
    pub id: u64,
    /// The master's address.
    pub peer: String,
    /// The authenticated user, if the server requires authentication.
    pub user: Option<String>,
    /// When the session connected, in seconds since the Unix epoch.
    pub since_unix: u64,
    /// How long it has been connected, in seconds.
    pub age_secs: u64,
    /// How many of its slaves run now.
    pub slaves: usize,
}

/// One running slave, as `list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaveView {
    /// The slave's server-wide id (what `kill` takes).
    pub server_id: u64,
    /// The session that started it.
    pub session: u64,
    /// Its process id.
    pub pid: u32,
    /// The script, as the master named it.
    pub script: String,
    /// How long it has run, in seconds.
    pub uptime_secs: u64,
    /// Its resident memory in bytes, from `/proc/PID/status` (None if unreadable).
    pub rss_bytes: Option<u64>,
    /// The CPU time it used (user + system), in seconds, from `/proc/PID/stat`.
    pub cpu_secs: Option<f64>,
}

#[derive(Debug)]
struct SessionInfo {
    peer: SocketAddr,
    user: Option<String>,
    since: SystemTime,
    started: Instant,
}

#[derive(Debug)]
struct SlaveInfo {
    session: u64,
    pid: u32,
    script: String,
    started: Instant,
    signaller: Signaller,
    by_operator: bool,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: BTreeMap<u64, SessionInfo>,
    slaves: BTreeMap<u64, SlaveInfo>,
}

/// The live sessions and slaves.
#[derive(Debug)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    next_session: AtomicU64,
    /// How many sessions are open (for the drain to wait on).
    open: watch::Sender<usize>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            inner: Mutex::default(),
            next_session: AtomicU64::new(1),
            open: watch::Sender::new(0),
        }
    }
}

/// Why an operator's kill did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KillError {
    /// No running slave has that server id.
    NoSuchSlave,
    /// The slave has exited already.
    Gone,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn open_sessions(&self) -> watch::Receiver<usize> {
        self.open.subscribe()
    }

    pub(crate) fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.sessions.len(), inner.slaves.len())
    }

    pub(crate) fn add_session(&self, peer: SocketAddr, user: Option<String>) -> u64 {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.sessions.insert(
            id,
            SessionInfo {
                peer,
                user,
                since: SystemTime::now(),
                started: Instant::now(),
            },
        );
        self.open.send_replace(inner.sessions.len());
        id
    }

    fn remove_session(&self, id: u64) {
        let mut inner = self.lock();
        inner.sessions.remove(&id);
        self.open.send_replace(inner.sessions.len());
    }

    pub(crate) fn add_slave(
        &self,
        server_id: u64,
        session: u64,
        script: &str,
        signaller: Signaller,
    ) {
        self.lock().slaves.insert(
            server_id,
            SlaveInfo {
                session,
                pid: signaller.pid(),
                script: script.to_owned(),
                started: Instant::now(),
                signaller,
                by_operator: false,
            },
        );
    }

    /// Removes a slave; whether an operator signalled it.
    fn remove_slave(&self, server_id: u64) -> bool {
        self.lock()
            .slaves
            .remove(&server_id)
            .is_some_and(|slave| slave.by_operator)
    }

    /// Sends `signal` to the slave `server_id` (its process, as a master's kill does);
    /// its pid.
    pub(crate) fn kill(&self, server_id: u64, signal: i32) -> Result<u32, KillError> {
        let mut inner = self.lock();
        let slave = inner
            .slaves
            .get_mut(&server_id)
            .ok_or(KillError::NoSuchSlave)?;
        slave.by_operator = true;
        slave
            .signaller
            .signal(Signal(signal))
            .map_err(|_| KillError::Gone)?;
        Ok(slave.pid)
    }

    /// Every session and slave now, with each slave's memory and CPU time.
    pub(crate) fn snapshot(&self) -> (Vec<SessionView>, Vec<SlaveView>) {
        let now = Instant::now();
        let (sessions, slaves) = {
            let inner = self.lock();
            let sessions: Vec<SessionView> = inner
                .sessions
                .iter()
                .map(|(&id, s)| SessionView {
                    id,
                    peer: s.peer.to_string(),
                    user: s.user.clone(),
                    since_unix: s
                        .since
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    age_secs: now.duration_since(s.started).as_secs(),
                    slaves: inner.slaves.values().filter(|v| v.session == id).count(),
                })
                .collect();
            let slaves: Vec<SlaveView> = inner
                .slaves
                .iter()
                .map(|(&server_id, v)| SlaveView {
                    server_id,
                    session: v.session,
                    pid: v.pid,
                    script: v.script.clone(),
                    uptime_secs: now.duration_since(v.started).as_secs(),
                    rss_bytes: None,
                    cpu_secs: None,
                })
                .collect();
            (sessions, slaves)
        };
        // /proc is read outside the lock.
        let slaves = slaves
            .into_iter()
            .map(|mut slave| {
                let usage = procstat::usage(slave.pid);
                slave.rss_bytes = usage.rss_bytes;
                slave.cpu_secs = usage.cpu_secs;
                slave
            })
            .collect();
        (sessions, slaves)
    }
}

/// A session's place in the registry, with what its log lines name. Dropping it removes
/// the session.
///
/// ```no_run
/// # fn f(state: distio_serve::ServerState) {
/// let entry = state.admin().session_opened("127.0.0.1:5000".parse().unwrap(), None);
/// assert!(entry.id() >= 1);
/// # }
/// ```
#[derive(Debug)]
pub struct SessionEntry {
    admin: Admin,
    id: u64,
    peer: SocketAddr,
    user: Option<String>,
    started: Instant,
}

impl SessionEntry {
    pub(crate) fn new(admin: Admin, peer: SocketAddr, user: Option<String>) -> Self {
        let id = admin.registry().add_session(peer, user.clone());
        admin.metrics().session_started();
        admin.metrics().sessions_open.inc();
        SessionEntry {
            admin,
            id,
            peer,
            user,
            started: Instant::now(),
        }
    }

    /// The session's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The master's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The authenticated user, or `-` when there is none (for log lines).
    pub fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("-")
    }

    /// How long the session has been open.
    pub fn duration(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        self.admin.metrics().sessions_open.dec();
        self.admin.registry().remove_session(self.id);
    }
}

/// A running slave's place in the registry. [`finish`](Self::finish) (or dropping it)
/// removes it.
#[derive(Debug)]
pub(crate) struct SlaveEntry {
    admin: Admin,
    server_id: u64,
    started: Instant,
    done: bool,
}

impl SlaveEntry {
    pub(crate) fn new(
        admin: Admin,
        server_id: u64,
        session: u64,
        script: &str,
        signaller: Signaller,
    ) -> Self {
        admin.metrics().spawn_started();
        admin
            .registry()
            .add_slave(server_id, session, script, signaller);
        SlaveEntry {
            admin,
            server_id,
            started: Instant::now(),
            done: false,
        }
    }

    /// Removes the slave, counts its end, and returns the `reason` its log line and
    /// metric carry, and how long it ran.
    pub(crate) fn finish(
        mut self,
        cause: distio_proto::remote::ExitCause,
    ) -> (&'static str, std::time::Duration) {
        self.done = true;
        let by_operator = self.admin.registry().remove_slave(self.server_id);
        let reason = super::metrics::exit_reason(cause, by_operator);
        self.admin.metrics().slave_ended(reason);
        (reason, self.started.elapsed())
    }
}

impl Drop for SlaveEntry {
    fn drop(&mut self) {
        if !self.done {
            self.admin.registry().remove_slave(self.server_id);
            // Its session no longer wanted it.
            self.admin.metrics().slave_ended("session_ended");
        }
    }
}
