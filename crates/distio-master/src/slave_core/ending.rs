//! Stopping a slave and settling it once its link ends: why new requests are refused,
//! and what pending ones fail with.

use distio_proto::{ErrorKind, TaskError};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::requests::wake_all;
use super::{SlaveCore, SlaveState};
use crate::Signal;
use crate::end::{EndReason, Ended};
use crate::link::LinkEnd;
use crate::remote::RemoteEnd;
use crate::sync::lock;
use distio_proto::remote::ExitCause;

/// How long a link whose slave process is gone (or whose process is gone while the link
/// stays open) waits for the other half before giving up on it.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Why the master stopped taking requests for a slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Closed,
    ShutDown,
    Killed(Signal),
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Closed => "closed",
            Stop::ShutDown => "shut down",
            Stop::Killed(_) => "killed",
        }
    }

    fn reason(self) -> EndReason {
        match self {
            Stop::Closed => EndReason::Closed,
            Stop::ShutDown => EndReason::ShutDown,
            Stop::Killed(signal) => EndReason::Killed(signal),
        }
    }
}

/// A request the master fails itself because the slave is stopped or gone: the error the
/// request resolves with, and why.
#[derive(Clone, Debug)]
pub(crate) struct Gone {
    pub(crate) error: TaskError,
    pub(crate) reason: EndReason,
}

impl SlaveCore {
    /// Why a new request is refused, if it is.
    pub(crate) fn refusal(&self) -> Option<Gone> {
        // The common case, without locks: stop() and link_ended() clear the flag first.
        if self.accepting.load(Ordering::Acquire) {
            return None;
        }
        let stop = *lock(&self.stop);
        Some(match stop {
            Some(stop) => Gone {
                error: TaskError::new(
                    ErrorKind::Closed,
                    format!(
                        "{self} has been {}; it takes no more requests",
                        stop.as_str()
                    ),
                ),
                reason: stop.reason(),
            },
            // Not stopped, so the link ended (which records why before clearing the flag).
            None => self.gone(),
        })
    }

    pub(crate) fn is_stopped(&self) -> bool {
        lock(&self.stop).is_some()
    }

    /// Stops taking requests (the first reason given is kept) and leaves the master's
    /// lists.
    pub(crate) fn stop(&self, why: Stop) {
        lock(&self.stop).get_or_insert(why);
        self.accepting.store(false, Ordering::Release);
        self.roster.unlist(self.id);
    }

    /// Why the slave takes no more requests: how its link ended once it has, else why the
    /// master stopped it; `None` while it takes requests.
    pub(crate) fn end_reason(&self) -> Option<EndReason> {
        if let Some(ended) = &self.status.borrow().end {
            return Some(ended.reason.clone());
        }
        lock(&self.stop).map(Stop::reason)
    }

    /// How the link ended (`Disconnected` if asked before it is recorded, which the
    /// callers do not do).
    fn end_record(&self) -> Ended {
        self.status.borrow().end.clone().unwrap_or(Ended {
            reason: EndReason::Disconnected,
            exit: None,
            has_process: self.has_process,
        })
    }

    /// The failure of requests to a slave whose link has ended.
    pub(crate) fn gone(&self) -> Gone {
        let ended = self.end_record();
        Gone {
            error: TaskError::new(ended.kind(), format!("{self} {ended}")),
            reason: ended.reason,
        }
    }

    /// The failure of a request that was pending when the link ended.
    pub(super) fn gone_before_answering(&self) -> Gone {
        let ended = self.end_record();
        Gone {
            error: TaskError::new(ended.kind(), format!("{self} {ended} before answering")),
            reason: ended.reason,
        }
    }

    /// For a remote slave: how it ended, as its host's session reported it (recorded
    /// before its link's stream ends, so this waits only for a slave whose channel is still
    /// open: it is killed, then given up after a second grace). The exit status is
    /// recorded; the reason is given when the host, not the slave, ended it.
    async fn settle_remote(&self) -> (Option<std::process::ExitStatus>, Option<EndReason>) {
        let Some(remote) = &self.remote else {
            return (None, None);
        };
        let mut end = remote.channel.wait_end(EXIT_GRACE).await;
        if end.is_none() {
            tracing::warn!(
                slave = self.id,
                "{self} closed its connection but did not exit; killing it"
            );
            remote.signal(Signal::KILL);
            end = remote.channel.wait_end(EXIT_GRACE).await;
        }
        match end {
            Some(RemoteEnd::Exited { status, cause }) => {
                self.record_exit(status);
                let reason = match cause {
                    ExitCause::LifetimeLimit => Some(EndReason::LifetimeLimit {
                        host: remote.host(),
                    }),
                    ExitCause::SessionEnded | ExitCause::ServerStopping => {
                        Some(EndReason::HostLost(crate::HostLoss {
                            host: remote.host(),
                            cause: crate::LossCause::ServerStopping,
                        }))
                    }
                    _ => None,
                };
                (Some(status), reason)
            }
            Some(RemoteEnd::Lost(loss)) => (None, Some(EndReason::HostLost(loss))),
            None => (None, None),
        }
    }

    /// The link is gone: take the slave off its master's lists, fail every pending
    /// request, settle the process, mark the slave ended and let the master forget it.
    pub(crate) async fn link_ended(&self, end: LinkEnd) {
        self.roster.unlist(self.id);
        let violation = match end {
            LinkEnd::Violation(violation) => {
                tracing::warn!(slave = self.id, "closing the link to {self}: {violation}");
                self.force_end();
                Some(violation)
            }
            LinkEnd::Closed => None,
        };
        let (exit, remote_reason) = self.settle_remote().await;
        let exit = if self.remote.is_some() {
            exit
        } else if self.has_process {
            match self.wait_exit(EXIT_GRACE).await {
                Some(exit) => Some(exit),
                None => {
                    tracing::warn!(
                        slave = self.id,
                        "{self} closed its connection but did not exit; killing it"
                    );
                    self.force_end();
                    self.wait_exit(EXIT_GRACE).await
                }
            }
        } else {
            None
        };
        let stop = *lock(&self.stop);
        let reason = match (violation, exit, stop, remote_reason) {
            (Some(violation), _, _, _) => EndReason::ProtocolViolation(violation),
            (None, _, Some(stop), _) => stop.reason(),
            (None, _, None, Some(reason)) => reason,
            (None, Some(exit), None, None) => EndReason::Exited(exit),
            (None, None, None, None) => EndReason::Disconnected,
        };
        let ended = Ended {
            reason,
            exit,
            has_process: self.has_process,
        };
        tracing::debug!(slave = self.id, "{self} {ended}");
        self.status.send_modify(|s| s.end = Some(ended));
        self.accepting.store(false, Ordering::Release);
        let mut wake = Vec::new();
        lock(&self.pending).close(Instant::now(), &mut wake);
        wake_all(wake);
        self.room.clear();
        lock(&self.pings).clear();
        // The master lets go of it before anyone waiting for the end is told of it.
        self.roster.release(self.id);
        self.status.send_modify(|s| s.state = SlaveState::Ended);
    }
}
