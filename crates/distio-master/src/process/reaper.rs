//! Ending the slaves' process groups, even when the master process dies without running
//! any code of ours.
//!
//! Every slave leads its own process group. [`ProcessGroup`] SIGKILLs the group when the
//! slave has exited or its handle goes. For a master that dies (a SIGKILL, a crash), one
//! small *reaper* process per master process, forked once from the spawner thread, keeps
//! the list of live groups: the master sends "add pgid" and "remove pgid" records over a
//! Unix stream socket; when the socket reaches end-of-file (every copy of the master's end
//! is closed: the master process is gone) or the reaper's parent-death signal arrives, the
//! reaper SIGKILLs every group still listed and exits. A reaper outlives its master by a
//! moment.
//!
//! A socket rather than a pipe: records go out with `send(MSG_NOSIGNAL | MSG_DONTWAIT)`,
//! so a reaper that died (someone SIGKILLed it) is an `EPIPE` error, logged once, never a
//! SIGPIPE that would kill a host process which does not ignore it (a C program loading
//! distio, say). A stream socket may take part of a record; the rest stays first in the
//! backlog and goes out next, and the reaper keeps a partial record until it is whole.
//!
//! After `fork` the reaper makes only async-signal-safe calls and allocates nothing: its
//! table, a bitmap over every possible process id, is allocated before the fork.
#![allow(unsafe_code)]

use distio_proto::Throttle;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};
use rustix::process::{Pid, Signal, WaitOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::sync::lock;

/// One more than the largest process id Linux hands out (`PID_MAX_LIMIT` on 64-bit).
const PID_LIMIT: usize = 1 << 22;

/// Words of the reaper's bitmap (512 KiB; pages only get memory once a bit is set).
const WORDS: usize = PID_LIMIT / 64;

/// Most bytes of records waiting for a reaper that does not read (1 Mi records' worth is
/// far more than a live reaper ever lets pile up).
const BACKLOG_LIMIT: usize = 4 << 20;

static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();
static STALLED: Throttle = Throttle::new(Duration::from_secs(10));
static KILL_FAILED: Throttle = Throttle::new(Duration::from_secs(10));

/// Starts this process's reaper, if that has not been tried yet. Called from the spawner
/// thread only: the reaper's parent-death signal is tied to the thread that forks it.
pub(super) fn start_once() {
    REAPER.get_or_init(|| match start() {
        Ok(reaper) => {
            tracing::debug!(
                pid = reaper.pid.as_raw_pid(),
                "started the process-group reaper"
            );
            Some(reaper)
        }
        Err(err) => {
            tracing::warn!(
                "could not start the process-group reaper ({err}); if the master process \
                 is killed, processes its slaves started may outlive it"
            );
            None
        }
    });
}

/// A slave's process group: the slave leads it, so its id is the slave's pid.
///
/// [`end`](Self::end) (or dropping it) SIGKILLs every process still in the group, once.
/// Until then the reaper lists it, and ends it if the master process dies.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    pgid: Option<libc::pid_t>,
}

impl ProcessGroup {
    /// The group led by process `pid` (`None`: no group to end), listed with the reaper.
    pub(crate) fn led_by(pid: Option<u32>) -> Self {
        let own = rustix::process::getpgrp().as_raw_pid();
        let pgid = pid
            .and_then(|pid| libc::pid_t::try_from(pid).ok())
            // Never 0 or 1 (`kill(0, ..)` and `kill(-1, ..)` mean "our group" and
            // "everyone"), never our own group.
            .filter(|&pgid| pgid > 1 && pgid != own);
        if let Some(pgid) = pgid {
            send(pgid);
        }
        ProcessGroup { pgid }
    }

    /// SIGKILLs every process still in the group and takes it off the reaper's list. Call
    /// it before the leader is reaped: while the leader lives or is a zombie, its pid, the
    /// group's id, cannot be reused. After the reaping it is safe only while some member
    /// lives (see [`exited_unreaped`](super::exited_unreaped)).
    pub(crate) fn end(&mut self) {
        let Some(pgid) = self.pgid.take() else { return };
        // `kill(-pgid, ..)`: the group, never a single process (`led_by` made sure pgid > 1).
        let killed = Pid::from_raw(pgid)
            .ok_or(Errno::INVAL)
            .and_then(|group| rustix::process::kill_process_group(group, Signal::KILL));
        if let Err(err) = killed
            && err != Errno::SRCH
            && let Some(suppressed) = KILL_FAILED.allow()
        {
            let err = io::Error::from(err);
            tracing::warn!(
                pgid,
                suppressed,
                "could not kill a slave's process group: {err}"
            );
        }
        send(-pgid);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.end();
    }
}

/// Hands a record (`pgid`: add, `-pgid`: remove) to the reaper, if there is one.
fn send(record: libc::pid_t) {
    if let Some(Some(reaper)) = REAPER.get() {
        reaper.send(record);
    }
}

struct Reaper {
    pid: Pid,
    channel: Mutex<Channel>,
}

/// The master's end of the reaper's socket, and records it did not take yet.
struct Channel {
    fd: OwnedFd,
    backlog: Vec<u8>,
    /// The reaper is gone: records are dropped.
    broken: bool,
    /// The dead reaper was waited for (or someone else did), so it is no zombie.
    reaped: bool,
}

impl Reaper {
    fn send(&self, record: libc::pid_t) {
        let mut channel = lock(&self.channel);
        if channel.broken {
            self.reap(&mut channel);
            return;
        }
        if channel.backlog.len() >= BACKLOG_LIMIT {
            if let Some(suppressed) = STALLED.allow() {
                tracing::warn!(
                    suppressed,
                    "the process-group reaper reads nothing; a record was dropped"
                );
            }
            return;
        }
        channel.backlog.extend_from_slice(&record.to_ne_bytes());
        if let Err(err) = channel.flush() {
            tracing::warn!(
                pid = self.pid.as_raw_pid(),
                "the process-group reaper is gone ({err}); if the master process is killed, \
                 processes its slaves started may outlive it"
            );
            channel.broken = true;
            channel.backlog = Vec::new();
            self.reap(&mut channel);
        }
    }

    /// Collects the exit status of a dead reaper, without waiting, so it does not stay a
    /// zombie. Safe to repeat: it is our child and not reaped yet, so its pid is still its.
    fn reap(&self, channel: &mut Channel) {
        if channel.reaped {
            return;
        }
        match rustix::process::waitpid(Some(self.pid), WaitOptions::NOHANG) {
            // Still exiting: try again with the next record.
            Ok(None) => {}
            // Reaped now, or by someone else (ECHILD).
            Ok(Some(_)) | Err(_) => channel.reaped = true,
        }
    }
}

impl Channel {
    /// Sends what the socket takes without waiting; the rest waits for the next record.
    /// An error means the reaper is gone.
    fn flush(&mut self) -> io::Result<()> {
        while !self.backlog.is_empty() {
            // MSG_NOSIGNAL: a dead reaper is EPIPE, not SIGPIPE. The socket may take part of
            // a record; its rest stays first in the backlog and goes out next.
            match rustix::net::send(
                &self.fd,
                &self.backlog,
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ) {
                Ok(0) => return Ok(()),
                Ok(sent) => drop(self.backlog.drain(..sent)),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    if let Some(suppressed) = STALLED.allow() {
                        tracing::warn!(
                            suppressed,
                            waiting = self.backlog.len() / 4,
                            "the process-group reaper is not keeping up; records wait"
                        );
                    }
                    return Ok(());
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

/// Forks the reaper. Runs on the spawner thread.
fn start() -> io::Result<Reaper> {
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    // Above 2, so the reaper can put /dev/null on its stdio without losing them.
    let read = super::above_stdio(theirs)?;
    let devnull = super::above_stdio(OwnedFd::from(std::fs::File::open("/dev/null")?))?;
    let mut groups = vec![0u64; WORDS];
    let master = rustix::process::getpid().as_raw_pid();
    // SAFETY: fork(2) in a multi-threaded process: the child runs only `reap`, which makes
    // async-signal-safe calls, allocates nothing and never returns.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child; `reap`'s contract holds (see there).
        unsafe { reap(read.as_raw_fd(), devnull.as_raw_fd(), &mut groups, master) }
    }
    Ok(Reaper {
        pid: Pid::from_raw(pid).ok_or_else(|| io::Error::other("fork returned pid 0"))?,
        channel: Mutex::new(Channel {
            fd: ours,
            backlog: Vec::new(),
            broken: false,
            reaped: false,
        }),
    })
}

/// The parent-death signal's handler: it only interrupts the `read`.
extern "C" fn wake(_: libc::c_int) {}

/// The reaper's life: detach from the master's group, signals and descriptors, keep the
/// table of groups from the socket, and on end-of-file (or the parent-death signal) SIGKILL
/// every group still in it.
///
/// # Safety
///
/// Call only in a child just forked from a multi-threaded process, with `read` (the
/// reaper's end of the socket) and `devnull` above 2. Only async-signal-safe functions are called;
/// nothing is allocated, locked or unwound (index arithmetic is checked by hand).
unsafe fn reap(read: RawFd, devnull: RawFd, groups: &mut [u64], master: libc::pid_t) -> ! {
    // SAFETY: each call below is an async-signal-safe system call on plain integers or on
    // memory of this stack frame, as the function's contract requires.
    unsafe {
        // Out of the master's process group: a Ctrl-C or a signal to that group misses us.
        libc::setpgid(0, 0);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_IGN);
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = wake as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        // No SA_RESTART: the signal must interrupt `read`.
        action.sa_flags = 0;
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1);

        // Stdio on /dev/null, the socket on 3, nothing else: holding any other descriptor of
        // the master's (a slave's socket, the master's end of this one) would keep it open.
        for stdio in 0..=2 {
            libc::dup2(devnull, stdio);
        }
        if read != 3 && libc::dup2(read, 3) == -1 {
            libc::_exit(1);
        }
        close_from(4);

        let mut buf = [0u8; 4096];
        let mut have = 0usize;
        // The master may have died before the parent-death signal was set.
        while libc::getppid() == master {
            let free = buf.len() - have;
            let n = libc::read(3, buf.as_mut_ptr().add(have).cast(), free);
            if n == 0 {
                break;
            }
            if n < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                break;
            }
            have += n.unsigned_abs();
            let mut at = 0;
            while at + 4 <= have {
                let record =
                    libc::pid_t::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
                apply(groups, record);
                at += 4;
            }
            // Keep a partial record: a stream socket may deliver part of one; the rest
            // comes with the next read.
            let mut keep = 0;
            while at < have {
                buf[keep] = buf[at];
                keep += 1;
                at += 1;
            }
            have = keep;
        }
        for (index, &word) in groups.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let pgid = index * 64 + bit;
                if pgid > 1 {
                    libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
                }
            }
        }
        libc::_exit(0)
    }
}

/// Adds (`pgid`) or removes (`-pgid`) a group in the bitmap.
fn apply(groups: &mut [u64], record: libc::pid_t) {
    let pgid = record.unsigned_abs() as usize;
    if let Some(word) = groups.get_mut(pgid / 64) {
        let mask = 1u64 << (pgid % 64);
        if record > 0 {
            *word |= mask;
        } else {
            *word &= !mask;
        }
    }
}

/// Closes every descriptor from `first` up.
///
/// # Safety
///
/// Nothing may use those descriptors afterwards.
unsafe fn close_from(first: libc::c_int) {
    // SAFETY: close_range(2) and close(2) take plain integers; the caller gave up the
    // descriptors.
    unsafe {
        #[cfg(target_os = "linux")]
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        ) == 0
        {
            return;
        }
        let mut limit: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(1 << 20) as libc::c_int
        } else {
            1 << 16
        };
        for fd in first..max {
            libc::close(fd);
        }
    }
}
