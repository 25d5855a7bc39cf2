//! Ending a running slave: on the master's kill, at the lifetime limit, when its session
//! ends or the server stops.
//!
//! Ending is SIGTERM to the slave, then, after a grace, SIGKILL to its whole process
//! group. The first reason to end a slave is the one its master is told.

use distio_master::Signal;
use distio_master::hosted::Signaller;
use distio_proto::remote::ExitCause;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the session asks of a running slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Send this signal to the slave (the master's kill).
    Kill(i32),
    /// End the slave, for this reason, with this grace between SIGTERM and SIGKILL.
    End { cause: ExitCause, grace: Duration },
}

/// Why a slave ended, as far as the server knows.
#[derive(Debug, Default)]
pub(crate) struct Ending {
    cause: Mutex<Option<ExitCause>>,
    master_signalled: Mutex<bool>,
}

impl Ending {
    fn set(&self, cause: ExitCause) {
        let mut current = self.cause.lock().unwrap_or_else(|p| p.into_inner());
        current.get_or_insert(cause);
    }

    /// The cause to report for a slave that ended with `signal` (if a signal ended it).
    pub(crate) fn cause(&self, signal: Option<i32>) -> ExitCause {
        if let Some(cause) = *self.cause.lock().unwrap_or_else(|p| p.into_inner()) {
            return cause;
        }
        let signalled = *self
            .master_signalled
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if signalled && signal.is_some() {
            ExitCause::Killed
        } else {
            ExitCause::Exited
        }
    }
}

/// Carries out the session's commands and the lifetime limit. Never returns: it is raced
/// against the slave's exit.
pub(crate) async fn control(
    mut commands: mpsc::Receiver<Command>,
    signaller: &Signaller,
    lifetime: Option<Duration>,
    lifetime_grace: Duration,
    ending: &Ending,
) -> Infallible {
    let far = || Instant::now() + Duration::from_secs(86_400 * 365);
    let mut limit_at = lifetime.map_or_else(far, |limit| Instant::now() + limit);
    let mut kill_at = far();
    let mut open = true;
    let terminate = |cause, grace, kill_at: &mut Instant| {
        ending.set(cause);
        let _ = signaller.signal(Signal::TERM);
        *kill_at = (*kill_at).min(Instant::now() + grace);
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(limit_at) => {
                limit_at = far();
                tracing::info!(pid = signaller.pid(), "a slave reached the lifetime limit; ending it");
                terminate(ExitCause::LifetimeLimit, lifetime_grace, &mut kill_at);
            }
            () = tokio::time::sleep_until(kill_at) => {
                kill_at = far();
                let _ = signaller.signal_group(Signal::KILL);
            }
            command = commands.recv(), if open => match command {
                Some(Command::Kill(signal)) => {
                    *ending.master_signalled.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    if let Err(err) = signaller.signal(Signal(signal)) {
                        tracing::debug!(signal, "could not signal a slave: {err}");
                    }
                }
                Some(Command::End { cause, grace }) => terminate(cause, grace, &mut kill_at),
                None => open = false,
            },
        }
    }
}
