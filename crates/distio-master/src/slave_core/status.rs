//! Where the slave is in its life: the handshake and the status the handle watches.

use distio_proto::Ready;
use std::process::ExitStatus;
use std::sync::Arc;

use super::SlaveCore;
use crate::end::{Ended, ProtocolViolation};

/// Where a slave is in its life.
///
/// ```
/// use distio_master::SlaveState;
/// assert_ne!(SlaveState::Starting, SlaveState::Ready);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaveState {
    /// Started; the handshake has not finished. Requests sent now are queued.
    Starting,
    /// Handshake done; requests flow.
    Ready,
    /// The link is closed and, for a process, the process has exited.
    Ended,
}

/// What the handle can observe changing.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    pub(crate) state: SlaveState,
    pub(crate) pid: Option<u32>,
    pub(crate) tasks: Arc<[String]>,
    pub(crate) exit: Option<ExitStatus>,
    /// Why the link ended, once it has.
    pub(crate) end: Option<Ended>,
}

impl SlaveCore {
    pub(crate) fn state(&self) -> SlaveState {
        self.status.borrow().state
    }

    pub(crate) fn accept_ready(&self, ready: Ready) -> Result<(), ProtocolViolation> {
        ready
            .check()
            .map_err(|err| ProtocolViolation::BadHandshake(Arc::new(err)))?;
        let alias = self.alias.as_deref().unwrap_or("");
        if ready.id != self.id || ready.alias != alias {
            return Err(ProtocolViolation::WrongIdentity {
                id: ready.id,
                alias: ready.alias,
            });
        }
        self.status.send_modify(|s| {
            s.state = SlaveState::Ready;
            s.pid.get_or_insert(ready.pid);
            s.tasks = Arc::from(ready.tasks);
        });
        Ok(())
    }

    /// Waits for the handshake to settle: true once the slave is ready, false if it ended
    /// first.
    pub(crate) async fn handshake_done(&self) -> bool {
        let mut status = self.status.subscribe();
        let state = status
            .wait_for(|s| s.state != SlaveState::Starting)
            .await
            .map(|s| s.state)
            .unwrap_or(SlaveState::Ended);
        state == SlaveState::Ready
    }

    /// Waits until the slave has ended.
    pub(crate) async fn ended(&self) {
        let mut rx = self.status.subscribe();
        let _ = rx.wait_for(|s| s.state == SlaveState::Ended).await;
    }
}
