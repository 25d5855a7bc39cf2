//! Operating-system details of local slave processes: signals; preparing the child so it
//! inherits its connection, leads its own process group and dies with its master; the
//! thread every slave is forked from ([`spawner`]); the process that ends the slaves'
//! groups when the master dies ([`reaper`]); waiting for a slave's exit without reaping it
//! ([`exit`]); and the threads that relay their output ([`output`]). This module is the
//! only place the crate uses `unsafe`.
#![allow(unsafe_code)]

mod exit;
pub(crate) mod output;
mod reaper;
mod spawner;
mod worker;

pub(crate) use exit::exited_unreaped;
pub use output::LineSplitter;
pub(crate) use output::{print_line, relay_lines};
pub(crate) use reaper::ProcessGroup;
pub(crate) use spawner::spawn;

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A Unix signal number.
///
/// ```
/// use distio_master::Signal;
/// assert_eq!(Signal::KILL.name(), Some("SIGKILL"));
/// assert_eq!(Signal(15), Signal::TERM);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signal(pub i32);

impl Signal {
    /// SIGKILL: ends the process at once; it cannot be caught.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// SIGTERM: asks the process to end.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// SIGINT: interrupt, as from Ctrl-C.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// SIGHUP: hang-up.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// SIGUSR1: user-defined.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// SIGUSR2: user-defined.
    pub const USR2: Signal = Signal(libc::SIGUSR2);

    /// The signal's conventional name, for the common ones.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::SIGKILL => "SIGKILL",
            libc::SIGTERM => "SIGTERM",
            libc::SIGINT => "SIGINT",
            libc::SIGHUP => "SIGHUP",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGABRT => "SIGABRT",
            libc::SIGPIPE => "SIGPIPE",
            _ => return None,
        })
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

/// Sends `signal` to process `pid`. A process that is already gone is not an error.
pub(crate) fn send_signal(pid: u32, signal: Signal) -> std::io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal.0) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Sends `signal` to every process of the group `pgid` (a slave's pid: it leads its
/// group). A group that is gone is not an error.
pub(crate) fn send_group_signal(pgid: u32, signal: Signal) -> std::io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        // Never 0 or 1: `kill(0, ..)` and `kill(-1, ..)` mean "our group" and "everyone".
        .filter(|&pgid| pgid > 1)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(-pgid, signal.0) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Makes sure the child's end of the socket is not one of the standard descriptors (which
/// the child's stdio setup would overwrite). Returns it unchanged in the usual case.
pub(crate) fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC duplicates an open descriptor we own onto the lowest free
    // number >= 3; it reads no memory.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// A resource limit set in the child before exec: `resource` is one of libc's `RLIMIT_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rlimit {
    pub(crate) resource: i32,
    pub(crate) value: u64,
}

/// What the child does between fork and exec beyond the basics, as plain data built before
/// the fork: the pre-exec closure only reads it, so it allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct ChildSetup {
    /// Descriptors that must survive exec (their close-on-exec flag is cleared).
    pub(crate) keep_open: Vec<RawFd>,
    /// An open `cgroup.procs` file of the cgroup the child joins first.
    pub(crate) cgroup_procs: Option<RawFd>,
    /// Limits set (soft and hard) before exec.
    pub(crate) limits: Vec<Rlimit>,
    /// User and group ids to switch to (supplementary groups dropped), last before exec.
    pub(crate) user: Option<(u32, u32)>,
}

/// Arranges for the child to lead its own process group (see [`ProcessGroup`]), and, in
/// the child between fork and exec: to join its cgroup, set its resource limits, switch
/// user (dropping supplementary groups), keep `setup.keep_open` across exec and be killed
/// when the master dies. The parent-death signal fires when the thread that forks ends:
/// fork on the [`spawner`] thread, which lives as long as the process. It is set after the
/// user switch, which would clear it.
pub(crate) fn prepare_child(command: &mut tokio::process::Command, setup: ChildSetup) {
    command.process_group(0);
    let master_pid = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec. It only calls write,
    // setrlimit, setgroups, setgid, setuid, fcntl, prctl and getppid, and reads plain data
    // built before the fork (iterating a Vec does not allocate): async-signal-safe
    // functions that neither allocate nor take locks, as the pre_exec contract requires.
    unsafe {
        command.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc == -1 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            if let Some(procs) = setup.cgroup_procs {
                // "0" moves the writing process: the child joins the cgroup before it
                // runs anything, so whatever it starts is in it too.
                let written = libc::write(procs, b"0".as_ptr().cast(), 1);
                if written != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for limit in &setup.limits {
                let value = libc::rlimit {
                    rlim_cur: limit.value as libc::rlim_t,
                    rlim_max: limit.value as libc::rlim_t,
                };
                #[allow(clippy::useless_conversion)]
                check(libc::setrlimit(limit.resource as _, &value))?;
            }
            if let Some((uid, gid)) = setup.user {
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(gid))?;
                check(libc::setuid(uid))?;
            }
            for &fd in &setup.keep_open {
                check(libc::fcntl(fd, libc::F_SETFD, 0))?;
            }
            #[cfg(target_os = "linux")]
            {
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
                // The master may have died between fork and prctl: then nobody would send
                // the signal, so give up now.
                if libc::getppid() != master_pid {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
            Ok(())
        });
    }
    let _ = master_pid;
}
