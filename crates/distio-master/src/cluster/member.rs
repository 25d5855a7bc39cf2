//! One host of a cluster: its health, what it last reported, and its probe.

use distio_proto::remote::Status;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;
use tokio::task::AbortHandle;

use super::placement::{HostHealth, HostView};
use crate::Host;
use crate::remote::Session;
use crate::sync::lock;

/// A host of the cluster.
pub(crate) struct Member {
    pub(crate) index: usize,
    pub(crate) host: Host,
    /// `host:port` as shown to users: never a password.
    pub(crate) shown: String,
    pub(crate) state: Mutex<MemberState>,
}

/// Whether a member takes slaves now.
#[derive(Clone, Debug)]
pub(crate) enum Health {
    Unknown,
    Up,
    Down { reason: String, since: Instant },
}

pub(crate) struct MemberState {
    pub(crate) health: Health,
    /// The last report: the server's status and this master's spawns since it.
    pub(crate) last: Option<(Status, u32)>,
    /// This master's slaves there, as last seen.
    pub(crate) ours: u32,
    /// Spawns this cluster has sent there that have not answered yet.
    pub(crate) starting: u32,
    /// The task probing it while it is down.
    pub(crate) probe: Option<AbortHandle>,
    /// The task waiting for its session to end, to mark it down at once.
    pub(crate) watch: Option<AbortHandle>,
    /// Back up after a probe: its old session is gone, so the next spawn opens a new one.
    pub(crate) fresh_session: bool,
    /// The master's session with it, for live figures.
    pub(crate) session: Weak<Session>,
}

impl MemberState {
    /// Takes the figures of its live session, if it has one; a lost session makes the
    /// host down (the next spawn's refresh starts its probe).
    fn sync(&mut self, shown: &str) {
        let Some(session) = self.session.upgrade() else {
            return;
        };
        if session.is_lost() {
            if matches!(self.health, Health::Up) {
                let reason = session
                    .loss_reason()
                    .unwrap_or_else(|| "its session was lost".into());
                tracing::warn!(host = %shown, "host down, skipped until it answers again: {reason}");
                self.health = Health::Down {
                    reason,
                    since: Instant::now(),
                };
                self.ours = 0;
            }
            self.session = Weak::new();
            return;
        }
        self.last = Some(session.status());
        self.ours = u32::try_from(session.live_channels()).unwrap_or(u32::MAX);
    }
}

impl Member {
    pub(crate) fn new(index: usize, host: Host) -> Self {
        let shown = host.to_string();
        Member {
            index,
            host,
            shown,
            state: Mutex::new(MemberState {
                health: Health::Unknown,
                last: None,
                ours: 0,
                starting: 0,
                probe: None,
                watch: None,
                fresh_session: false,
                session: Weak::new(),
            }),
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        matches!(lock(&self.state).health, Health::Down { .. })
    }

    /// Records the host as up, with its live session. Returns whether that session is new
    /// to it (then its end should be watched).
    pub(crate) fn up(&self, session: &Arc<Session>) -> bool {
        let mut state = lock(&self.state);
        if !matches!(state.health, Health::Up) {
            tracing::info!(host = %self.shown, "host up: it takes slaves");
        }
        let new = !std::ptr::eq(state.session.as_ptr(), Arc::as_ptr(session));
        state.health = Health::Up;
        state.session = Arc::downgrade(session);
        state.fresh_session = false;
        state.sync(&self.shown);
        new
    }

    /// Whether `session` is the one it is up with now.
    pub(crate) fn is_current(&self, session: &Weak<Session>) -> bool {
        let state = lock(&self.state);
        matches!(state.health, Health::Up) && Weak::ptr_eq(&state.session, session)
    }

    /// Records the host as down. Returns whether it was not down before (then a probe
    /// should start).
    pub(crate) fn down(&self, reason: String) -> bool {
        let mut state = lock(&self.state);
        if matches!(state.health, Health::Down { .. }) {
            return false;
        }
        tracing::warn!(host = %self.shown, "host down, skipped until it answers again: {reason}");
        state.health = Health::Down {
            reason,
            since: Instant::now(),
        };
        state.ours = 0;
        state.session = Weak::new();
        true
    }

    /// A probe reached the host: it takes slaves again, through a new session.
    pub(crate) fn answered(&self, status: Status) {
        let mut state = lock(&self.state);
        tracing::info!(host = %self.shown, "host answers again; back in placement");
        state.health = Health::Up;
        state.last = Some((status, 0));
        state.probe = None;
        state.fresh_session = true;
    }

    /// How placement sees it now.
    pub(crate) fn view(&self) -> HostView {
        let mut state = lock(&self.state);
        state.sync(&self.shown);
        let resuming = state
            .session
            .upgrade()
            .is_some_and(|session| session.is_reconnecting());
        let health = match &state.health {
            Health::Unknown => HostHealth::Unknown,
            Health::Up if resuming => HostHealth::Resuming,
            Health::Up => HostHealth::Up,
            Health::Down { reason, since } => HostHealth::Down {
                reason: reason.clone(),
                since: since.elapsed(),
            },
        };
        let mut view = HostView::new(self.index, self.shown.clone(), health);
        if let Some((status, since)) = state.last {
            view.capacity = status.capacity;
            view.busy = status
                .running
                .saturating_add(since)
                .saturating_add(state.starting);
            view.queued = status.queued;
            view.cpus = status.cpus;
            view.load = status.load();
        } else {
            view.busy = state.starting;
        }
        view.ours = state.ours;
        view
    }
}
