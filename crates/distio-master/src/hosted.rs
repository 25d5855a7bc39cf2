//! Starting and ending slave processes, for programs that host slaves without being their
//! master (such as `distio-serve`).
//!
//! [`ProcessSpec::start`] starts a program exactly as [`Master::spawn`](crate::Master::spawn)
//! starts a local slave — the same code: it is forked from the one spawner thread, leads
//! its own process group, gets SIGKILL from the kernel if this process dies, and its group
//! is listed with the group reaper, which SIGKILLs it if this process is SIGKILLed. The
//! child inherits one end of a Unix socket pair and finds it in `DISTIO_SLAVE_FD`, as every
//! distio slave does; the caller gets the other end, the child's stdout and stderr pipes,
//! and a [`ProcessHandle`] to signal it and wait for it. Dropping the handle SIGKILLs the
//! process group.
//!
//! Unlike [`SpawnOptions`](crate::SpawnOptions), a [`ProcessSpec`] gives the child only the
//! environment the caller lists (and `DISTIO_SLAVE_FD`): nothing of this process's own
//! environment leaks into it.
//!
//! ```no_run
//! use distio_master::hosted::ProcessSpec;
//! use distio_master::Signal;
//!
//! # async fn run() -> std::io::Result<()> {
//! let mut started = ProcessSpec::new("/srv/slaves/worker")
//!     .arg("--quiet")
//!     .env("PATH", "/usr/bin:/bin")
//!     .current_dir("/srv/slaves")
//!     .start()
//!     .await?;
//! println!("started {}", started.handle.pid());
//! // `started.socket` carries the slave's length-prefixed frames.
//! started.handle.signal(Signal::TERM)?;
//! let status = started.handle.wait().await?;
//! println!("exited: {status}");
//! # Ok(())
//! # }
//! ```

use distio_proto::local::SLAVE_FD_ENV;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use crate::Signal;
pub use crate::process::LineSplitter;
use crate::process::{self, ChildSetup, ProcessGroup, Rlimit};
use crate::sync::lock;

/// What the child's stdout and stderr are connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stdout {
    Piped,
    Inherit,
    Null,
}

/// How to start a hosted slave process: the program, its arguments, its whole environment
/// and its working directory. See the [module docs](self).
///
/// ```
/// use distio_master::hosted::ProcessSpec;
/// let spec = ProcessSpec::new("/usr/bin/python3")
///     .args(["worker.py", "--fast"])
///     .env("LANG", "C.UTF-8")
///     .current_dir("/srv");
/// assert_eq!(spec.program().to_str(), Some("/usr/bin/python3"));
/// ```
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) current_dir: Option<PathBuf>,
    pub(crate) inherit_env: bool,
    pub(crate) stdio: Stdout,
    /// Descriptors the child keeps across exec (the program's, a script's), at the same
    /// numbers; ours close when the last clone of the spec goes.
    passed: Vec<Arc<OwnedFd>>,
    arg0: Option<OsString>,
    limits: ResourceLimits,
    cgroup_procs: Option<Arc<OwnedFd>>,
    user: Option<(u32, u32)>,
}

/// Resource limits set on a hosted process before it runs (each as both its soft and hard
/// limit, so the process cannot raise it). `None` leaves a limit as this process has it.
///
/// ```
/// use distio_master::hosted::{ProcessSpec, ResourceLimits};
/// let limits = ResourceLimits {
///     core_dump_bytes: Some(0),
///     open_files: Some(1024),
///     ..ResourceLimits::default()
/// };
/// let spec = ProcessSpec::new("/bin/true").limits(limits);
/// # let _ = spec;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// `RLIMIT_AS`: the most virtual memory, in bytes.
    pub address_space_bytes: Option<u64>,
    /// `RLIMIT_NPROC`: the most processes (and threads) *the process's user* may have, counted
    /// over every process of that user on the machine, not per process. Not enforced for
    /// root (or a process with `CAP_SYS_RESOURCE`).
    pub processes: Option<u64>,
    /// `RLIMIT_NOFILE`: one more than the highest descriptor number the process may open.
    pub open_files: Option<u64>,
    /// `RLIMIT_CPU`: CPU time in seconds; SIGXCPU at the limit (then SIGKILL).
    pub cpu_seconds: Option<u64>,
    /// `RLIMIT_CORE`: the largest core dump in bytes; `Some(0)` turns core dumps off.
    pub core_dump_bytes: Option<u64>,
}

impl ResourceLimits {
    fn rlimits(&self) -> Vec<Rlimit> {
        [
            (libc::RLIMIT_AS, self.address_space_bytes),
            (libc::RLIMIT_NPROC, self.processes),
            (libc::RLIMIT_NOFILE, self.open_files),
            (libc::RLIMIT_CPU, self.cpu_seconds),
            (libc::RLIMIT_CORE, self.core_dump_bytes),
        ]
        .into_iter()
        .filter_map(|(resource, value)| {
            value.map(|value| Rlimit {
                resource: resource as i32,
                value,
            })
        })
        .collect()
    }
}

/// The path by which a process reaches its own descriptor `fd`.
fn fd_path(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

impl ProcessSpec {
    /// A spec starting `program` with no arguments, an empty environment (apart from
    /// `DISTIO_SLAVE_FD`), this process's working directory, and stdout and stderr piped.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        ProcessSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            inherit_env: false,
            stdio: Stdout::Piped,
            passed: Vec::new(),
            arg0: None,
            limits: ResourceLimits::default(),
            cgroup_procs: None,
            user: None,
        }
    }

    /// A spec that runs the very file open as `program` (opened for reading, e.g. after
    /// checking it), not whatever a path names by the time of the exec: the child keeps the
    /// descriptor at the same number and executes `/proc/self/fd/N` (what
    /// `execveat(fd, "", AT_EMPTY_PATH)` does). For a `#!` script the kernel hands the
    /// interpreter that same `/proc/self/fd/N`, which is why the descriptor stays open in
    /// the child: the script sees it as an inherited descriptor, and its `argv[0]` is
    /// `/proc/self/fd/N` unless [`arg0`](Self::arg0) sets it. Fails only if the descriptor
    /// cannot be moved above the standard ones.
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// let file = std::fs::File::open("/srv/slaves/worker")?;
    /// let started = distio_master::hosted::ProcessSpec::from_fd(file.into())?
    ///     .arg0("worker")
    ///     .start()
    ///     .await?;
    /// # drop(started);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_fd(program: OwnedFd) -> std::io::Result<Self> {
        let program = process::above_stdio(program)?;
        let mut spec = ProcessSpec::new(fd_path(program.as_raw_fd()));
        spec.passed.push(Arc::new(program));
        Ok(spec)
    }

    /// Adds an argument naming the file open as `file`: the child keeps the descriptor at
    /// the same number and gets `/proc/self/fd/N` as the argument, so an interpreter reads
    /// the very file the caller opened (and checked), whatever its path names by then.
    /// Fails only if the descriptor cannot be moved above the standard ones.
    ///
    /// ```no_run
    /// # fn run() -> std::io::Result<()> {
    /// let script = std::fs::File::open("/srv/slaves/worker.py")?;
    /// let spec = distio_master::hosted::ProcessSpec::new("/usr/bin/python3")
    ///     .arg_fd(script.into())?
    ///     .arg("--fast");
    /// # drop(spec);
    /// # Ok(())
    /// # }
    /// ```
    pub fn arg_fd(mut self, file: OwnedFd) -> std::io::Result<Self> {
        let file = process::above_stdio(file)?;
        self.args.push(fd_path(file.as_raw_fd()).into());
        self.passed.push(Arc::new(file));
        Ok(self)
    }

    /// The child's `argv[0]` (default: the program's path).
    #[must_use]
    pub fn arg0(mut self, arg0: impl Into<OsString>) -> Self {
        self.arg0 = Some(arg0.into());
        self
    }

    /// Resource limits the child gets before it runs the program.
    #[must_use]
    pub fn limits(mut self, limits: ResourceLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Makes the child join a cgroup before it runs the program: `procs` is that cgroup's
    /// `cgroup.procs` file, open for writing. Joining happens first, so everything the
    /// program starts is in the cgroup too; a child that cannot join does not start.
    ///
    /// ```no_run
    /// # fn run() -> std::io::Result<()> {
    /// let procs = std::fs::OpenOptions::new()
    ///     .write(true)
    ///     .open("/sys/fs/cgroup/distio/slave-1/cgroup.procs")?;
    /// let spec = distio_master::hosted::ProcessSpec::new("/bin/true").join_cgroup(procs.into());
    /// # drop(spec);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn join_cgroup(mut self, procs: OwnedFd) -> Self {
        self.cgroup_procs = Some(Arc::new(procs));
        self
    }

    /// Runs the child as user `uid` and group `gid`, with no supplementary groups (switched
    /// after joining the cgroup and setting the limits, just before exec). This process
    /// must be allowed to switch (root, or `CAP_SETUID`/`CAP_SETGID`), or the start fails.
    ///
    /// ```
    /// let spec = distio_master::hosted::ProcessSpec::new("/bin/true").run_as(65534, 65534);
    /// # drop(spec);
    /// ```
    #[must_use]
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// The program to start.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Adds a command-line argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds command-line arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable. The child sees only these (and `DISTIO_SLAVE_FD`).
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The child's working directory (default: this process's).
    #[must_use]
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Starts the process (see the [module docs](self) for what ends with it).
    pub async fn start(self) -> std::io::Result<HostedProcess> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let theirs = process::above_stdio(OwnedFd::from(theirs))?;

        let mut command = Command::new(&self.program);
        if !self.inherit_env {
            command.env_clear();
        }
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(SLAVE_FD_ENV, theirs.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let stdio = || match self.stdio {
            Stdout::Piped => Stdio::piped(),
            Stdout::Inherit => Stdio::inherit(),
            Stdout::Null => Stdio::null(),
        };
        command.stdout(stdio()).stderr(stdio());
        if let Some(arg0) = &self.arg0 {
            command.arg0(arg0);
        }
        let mut keep_open = vec![theirs.as_raw_fd()];
        keep_open.extend(self.passed.iter().map(|fd| fd.as_raw_fd()));
        let setup = ChildSetup {
            keep_open,
            cgroup_procs: self.cgroup_procs.as_ref().map(|fd| fd.as_raw_fd()),
            limits: self.limits.rlimits(),
            user: self.user,
        };
        process::prepare_child(&mut command, setup);

        // The spawner closes our copy of the child's end once the child has its own, so
        // the socket sees the child's exit.
        // Every descriptor the child needs stays open on the spawner until the fork is done,
        // even if this future is dropped meanwhile (a closed number could be reused by an
        // unrelated file the child would then keep or run).
        let mut inherited = vec![Arc::new(theirs)];
        inherited.extend(self.passed.iter().cloned());
        inherited.extend(self.cgroup_procs.iter().cloned());
        let (mut child, group) = process::spawn(command, inherited).await?;
        let pid = child.id().unwrap_or_default();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let handle = ProcessHandle {
            child,
            group,
            signaller: Signaller {
                pid,
                live: Arc::new(Mutex::new(true)),
            },
        };
        ours.set_nonblocking(true)?;
        let socket = UnixStream::from_std(ours)?;
        Ok(HostedProcess {
            socket,
            stdout,
            stderr,
            handle,
        })
    }
}

/// A started slave process: its socket, its output pipes and its handle. Take the parts
/// apart as needed; dropping the [`handle`](Self::handle) SIGKILLs its process group.
#[derive(Debug)]
pub struct HostedProcess {
    /// This process's end of the slave's socket: the slave's frames, each behind a 4-byte
    /// big-endian length.
    pub socket: UnixStream,
    /// The slave's standard output, when piped.
    pub stdout: Option<ChildStdout>,
    /// The slave's standard error, when piped.
    pub stderr: Option<ChildStderr>,
    /// Signals the process, waits for it, and ends its group when dropped.
    pub handle: ProcessHandle,
}

/// A started slave process and its process group.
///
/// Dropped, it SIGKILLs every process still in the group (and the process), and takes the
/// group off the reaper's list.
#[derive(Debug)]
pub struct ProcessHandle {
    child: Child,
    group: ProcessGroup,
    signaller: Signaller,
}

impl ProcessHandle {
    /// The process id (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.signaller.pid
    }

    /// Sends `signal` to the process (the group's leader), if it has not exited.
    pub fn signal(&self, signal: Signal) -> std::io::Result<()> {
        self.signaller.signal(signal)
    }

    /// A cloneable way to signal the process while another task waits for it.
    pub fn signaller(&self) -> Signaller {
        self.signaller.clone()
    }

    /// SIGKILLs every process in the group, now.
    pub fn kill_group(&mut self) {
        self.group.end();
    }

    /// Waits for the process to exit, SIGKILLs what is left of its process group while
    /// the exited process is not reaped yet (so the group's id cannot have been reused),
    /// then reaps it and returns how it exited. Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let unreaped = match self.child.id() {
            Some(pid) => process::exited_unreaped(pid).await,
            None => Err(std::io::Error::other("already reaped")),
        };
        match unreaped {
            Ok(()) => {
                // The process is a zombie: no signal may be sent once it is reaped.
                *lock(&self.signaller.live) = false;
                self.group.end();
            }
            Err(err) => tracing::debug!(
                pid = self.signaller.pid,
                "cannot wait for the slave's exit without reaping it ({err}); its process \
                 group is killed just after"
            ),
        }
        let status = self.child.wait().await;
        *lock(&self.signaller.live) = false;
        // Nothing left to do if the group was ended above.
        self.group.end();
        status
    }
}

impl Drop for ProcessHandle {
    fn drop(&mut self) {
        // Before `child` drops: the leader is not reaped yet, so the group id is still its.
        self.group.end();
    }
}

/// Signals one hosted process (or its group) from anywhere, until it has been reaped:
/// once [`ProcessHandle::wait`] has seen the exit, signals are no longer sent, so they
/// cannot reach a process that reused the pid.
///
/// ```no_run
/// # async fn run(handle: distio_master::hosted::ProcessHandle) -> std::io::Result<()> {
/// use distio_master::Signal;
/// let signaller = handle.signaller();
/// signaller.signal_group(Signal::TERM)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Signaller {
    pid: u32,
    live: Arc<Mutex<bool>>,
}

impl Signaller {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to the process, if it has not been reaped. A process that is gone is
    /// not an error.
    pub fn signal(&self, signal: Signal) -> std::io::Result<()> {
        let live = lock(&self.live);
        if *live {
            process::send_signal(self.pid, signal)
        } else {
            Ok(())
        }
    }

    /// Sends `signal` to every process of the group the process leads, if it has not
    /// been reaped.
    pub fn signal_group(&self, signal: Signal) -> std::io::Result<()> {
        let live = lock(&self.live);
        if *live {
            process::send_group_signal(self.pid, signal)
        } else {
            Ok(())
        }
    }
}
