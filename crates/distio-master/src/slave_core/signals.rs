//! The slave's process: signalling it, and its exit.

use std::process::ExitStatus;
use std::time::Duration;

use super::SlaveCore;
use crate::{Signal, process};

impl SlaveCore {
    pub(crate) fn record_exit(&self, exit: ExitStatus) {
        self.status.send_modify(|s| s.exit = Some(exit));
    }

    /// Sends `signal` to the slave process, if it has one that has not exited. A remote
    /// slave's server is asked to send it.
    pub(crate) fn signal(&self, signal: Signal) -> std::io::Result<()> {
        if let Some(remote) = &self.remote {
            remote.signal(signal);
            return Ok(());
        }
        let status = self.status.borrow();
        match (status.pid, status.exit) {
            (Some(pid), None) if self.has_process => process::send_signal(pid, signal),
            _ => Ok(()),
        }
    }

    /// Ends the slave without asking: SIGKILL for a process, dropping the link otherwise.
    pub(crate) fn force_end(&self) {
        if self.has_process {
            if let Err(err) = self.signal(Signal::KILL) {
                tracing::warn!(slave = self.id, "could not kill slave process: {err}");
            }
        } else {
            self.end_link.notify_one();
        }
    }

    pub(super) async fn wait_exit(&self, limit: Duration) -> Option<ExitStatus> {
        let mut rx = self.status.subscribe();
        let waited = tokio::time::timeout(limit, rx.wait_for(|s| s.exit.is_some())).await;
        waited.ok().and_then(|r| r.ok().and_then(|s| s.exit))
    }
}
