//! Waiting for a slave to exit without reaping it, so its process group can be ended while
//! the group's id is still reserved.
//!
//! A slave leads its process group, so the group's id is the slave's pid. Once the leader
//! is reaped and the group's last member is gone, the id is free, and a new process could
//! get it and lead a new group of that id: a `kill(-pgid, SIGKILL)` sent after reaping
//! could then hit strangers. While the leader is a zombie, its pid (and so the group id)
//! is not reused. So [`exited_unreaped`] waits for the exit through a pidfd and confirms it
//! with `waitid(P_PIDFD, .., WEXITED | WNOWAIT)`, which leaves the zombie in place; the
//! group is killed then, and only after that does tokio's `Child::wait` reap the leader.
//!
//! That needs nothing else to reap the leader first. tokio (checked up to 1.54) reaps a
//! `Child` only when its `wait`/`try_wait` is polled (on pidfd readiness, or on SIGCHLD
//! where pidfds are missing), with `waitpid(pid, WNOHANG)` for that one pid; children it
//! orphans are waited for by pid as well. Nothing in tokio waits for any child (-1), and
//! only [`watch_process`](crate::spawn::watch_process) waits for a slave.
//!
//! Residual risk, where [`exited_unreaped`] fails and the caller reaps first, then kills:
//! a kernel without `pidfd_open` and `P_PIDFD` (before Linux 5.4) or a sandbox refusing
//! them, and a host process that reaps children behind tokio's back (SIGCHLD set to
//! `SIG_IGN`, `SA_NOCLDWAIT`, its own `waitpid(-1)`). There, between the reaping and the
//! kill, a group with no member left could see its id handed to a new group; the kernel
//! would have to cycle through every other free pid in those microseconds.

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions};
use std::io;
use std::os::fd::AsFd;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Waits, without blocking a thread, until our child `pid` (not reaped yet) has exited,
/// and returns with it still a zombie: nothing is reaped, and the pid stays reserved until
/// `Child::wait` reaps it. Fails where pidfds are unsupported, or if the child was reaped
/// by someone else (`ECHILD`).
pub(crate) async fn exited_unreaped(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(Errno::SRCH))?;
    // The child is not reaped, so `pid` is still it: the pidfd refers to our child.
    let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty())?;
    // Deprecated since tokio 1.53.3 for types whose descriptor could change or close under
    // it; an `OwnedFd` owned by the `AsyncFd` cannot. Its replacement, the `unsafe`
    // `register_with_interest`, is missing from the tokio versions this crate allows.
    #[allow(deprecated)]
    let pidfd = AsyncFd::with_interest(pidfd, Interest::READABLE)?;
    loop {
        // Readable once the whole process (every thread) has exited.
        let mut ready = pidfd.readable().await?;
        let exited = rustix::process::waitid(
            WaitId::PidFd(pidfd.get_ref().as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG,
        );
        match exited {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => ready.clear_ready(),
            Err(Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::exited_unreaped;
    use std::time::Duration;

    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')').next()?.trim_start().chars().next()
    }

    #[tokio::test]
    async fn an_exited_child_stays_a_zombie_until_it_is_waited_for() {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "sleep 0.3; exit 3"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let early = tokio::time::timeout(Duration::from_millis(50), exited_unreaped(pid)).await;
        assert!(early.is_err(), "reported a running child as exited");
        tokio::time::timeout(Duration::from_secs(10), exited_unreaped(pid))
            .await
            .expect("the exit was never seen")
            .unwrap();
        assert_eq!(state(pid), Some('Z'), "the child was reaped too early");
        assert_eq!(child.wait().await.unwrap().code(), Some(3));
        assert_eq!(state(pid), None, "the child was not reaped");
    }
}
