//! What every session of a server shares.

use distio_proto::SlaveId;
use distio_proto::remote::SessionCodec;
use distio_proto::remote::passphrase::PassphraseKey;
use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::builder::Settings;
use super::slots::Slots;

/// The state a server's sessions share: its settings, its slave places, its instance id.
/// Cheap to clone. Get it with [`Server::state`](crate::Server::state) to build the
/// [`router`](crate::router) yourself.
#[derive(Clone, Debug)]
pub struct ServerState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    settings: Settings,
    slots: Arc<Slots>,
    instance: u64,
    next_server_id: AtomicU64,
    stop: watch::Receiver<bool>,
    sessions: TaskTracker,
    env: Vec<(OsString, OsString)>,
    admin: crate::admin::Admin,
    passphrase: Option<Arc<PassphraseKey>>,
    resumes: super::resume::Resumes,
}

impl ServerState {
    pub(crate) fn new(
        settings: Settings,
        passphrase: Option<Arc<PassphraseKey>>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let slots = Slots::new(settings.max_concurrent_slaves, settings.queue_limit);
        // The environment a slave gets: only what it needs to find programs and decode
        // text. Nothing else of the server's environment (secrets included) leaks.
        let env = ["PATH", "LANG", "HOME"]
            .into_iter()
            .filter_map(|key| std::env::var_os(key).map(|value| (OsString::from(key), value)))
            .collect();
        ServerState {
            shared: Arc::new(Shared {
                settings,
                slots,
                instance: instance_id(),
                next_server_id: AtomicU64::new(1),
                stop,
                sessions: TaskTracker::new(),
                env,
                admin: crate::admin::Admin::default(),
                passphrase,
                resumes: super::resume::Resumes::default(),
            }),
        }
    }

    /// The server's operator state: metrics, live sessions and slaves, draining.
    pub fn admin(&self) -> &crate::admin::Admin {
        &self.shared.admin
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    pub(crate) fn slots(&self) -> &Arc<Slots> {
        &self.shared.slots
    }

    pub(crate) fn instance(&self) -> u64 {
        self.shared.instance
    }

    /// The tokens of the resumable sessions.
    pub(crate) fn resumes(&self) -> &super::resume::Resumes {
        &self.shared.resumes
    }

    /// The passphrase mode's key, if the server has a passphrase.
    pub(crate) fn passphrase(&self) -> Option<&Arc<PassphraseKey>> {
        self.shared.passphrase.as_ref()
    }

    pub(crate) fn env(&self) -> &[(OsString, OsString)] {
        &self.shared.env
    }

    pub(crate) fn codec(&self) -> SessionCodec {
        SessionCodec::with_max_frame_len(self.shared.settings.max_frame_len)
    }

    /// A new server-wide id for a slave (its `server_id`).
    pub(crate) fn next_server_id(&self) -> SlaveId {
        self.shared.next_server_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.shared.stop.clone()
    }

    pub(crate) fn stopping(&self) -> bool {
        *self.shared.stop.borrow()
    }

    pub(crate) fn sessions(&self) -> TaskTracker {
        self.shared.sessions.clone()
    }

    /// Waits for every session to end, at most the shutdown grace and a margin: each
    /// session ends its slaves within the grace by itself.
    pub(crate) async fn wait_sessions(&self) {
        let sessions = &self.shared.sessions;
        sessions.close();
        let limit = self.shared.settings.shutdown_grace + Duration::from_secs(5);
        if tokio::time::timeout(limit, sessions.wait()).await.is_err() {
            tracing::warn!(
                left = sessions.len(),
                "sessions still ending after the shutdown grace; stopping anyway"
            );
        }
    }
}

/// A random number identifying this run of the server.
fn instance_id() -> u64 {
    getrandom::u64().unwrap_or_else(|err| {
        tracing::warn!("no random instance id ({err}); using the time instead");
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
    })
}
