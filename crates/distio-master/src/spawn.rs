//! Starting local slave processes.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

use crate::hosted::{ProcessHandle, ProcessSpec, Stdout};
use crate::limits::Limits;
use crate::slave_core::SlaveCore;
use crate::sync::lock;
use crate::{Link, MasterError, Timeout, process};

/// How long [`Slave::close`](crate::Slave::close) waits for a slave to exit before killing it.
pub const DEFAULT_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Most bytes of each output stream kept when output is captured (the newest are kept).
pub const CAPTURE_LIMIT: usize = 1024 * 1024;

/// Most bytes of a slave's output relayed as one line with [`Output::Prefixed`]: a longer
/// run of bytes without a newline is relayed as several lines of at most this many bytes
/// (each behind the prefix), so the master never holds more than this of a line. A cut can
/// fall inside a multi-byte UTF-8 character.
///
/// ```
/// assert_eq!(distio_master::LINE_LIMIT, 64 * 1024);
/// ```
pub const LINE_LIMIT: usize = 64 * 1024;

/// What happens to a local slave's standard output and error.
///
/// ```
/// use distio_master::{Output, SpawnOptions};
/// let opts = SpawnOptions::new("./worker").output(Output::Capture);
/// # drop(opts);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Each line is copied to the master's own stdout/stderr behind `[alias] ` (or
    /// `[slave #id] `), whole, by a thread of the master's (never a runtime thread); a
    /// line longer than [`LINE_LIMIT`] comes out in pieces. If the master's stdout stalls
    /// (a pipe nobody reads), the slave's writes block; the master carries on.
    #[default]
    Prefixed,
    /// The slave writes straight to the master's stdout/stderr.
    Inherit,
    /// Kept in memory (the last [`CAPTURE_LIMIT`] bytes of each); read it with
    /// [`Slave::captured_output`](crate::Slave::captured_output).
    Capture,
    /// Discarded.
    Null,
}

/// How to start a local slave process.
///
/// ## What ends with the slave
///
/// The slave leads its own process group, and the processes it starts join that group
/// unless they leave it. When the slave process exits, or is closed, shut down or killed,
/// or its last handle (and its master) is dropped, every process still in its group gets
/// SIGKILL. If the master process dies, however it dies (SIGKILL included), the slave gets
/// SIGKILL from the kernel (Linux's parent-death signal), and a small helper process the
/// master forks once, the *group reaper*, SIGKILLs the groups of its live slaves; the
/// reaper then exits. This holds for any slave program, not only distio's.
///
/// A process that leaves the group — `setsid`, its own `setpgid`, a daemon detaching
/// itself — is out of reach: it survives the slave and the master. distio does not put
/// slaves in cgroups (yet); contain such programs with one of your own. Since slaves are not in the terminal's foreground group, a Ctrl-C in the
/// terminal reaches the master only; the slaves end with it.
///
/// ```
/// use distio_master::{Output, SpawnOptions};
/// use std::time::Duration;
///
/// let opts = SpawnOptions::new("target/debug/worker")
///     .alias("worker")
///     .group("squares")
///     .arg("--verbose")
///     .env("RUST_LOG", "debug")
///     .output(Output::Inherit)
///     .default_timeout(Duration::from_secs(10));
/// assert_eq!(opts.program().to_str(), Some("target/debug/worker"));
/// ```
#[derive(Clone, Debug)]
pub struct SpawnOptions {
    /// The program, its arguments, environment (on top of the master's) and working
    /// directory: the same description a host's [`ProcessSpec`] is.
    pub(crate) process: ProcessSpec,
    pub(crate) alias: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) output: Output,
    pub(crate) default_timeout: Timeout,
    pub(crate) catch_all: Option<bool>,
    pub(crate) close_grace: Duration,
    pub(crate) limits: Limits,
    pub(crate) wait_ready: bool,
    pub(crate) remote: Option<crate::remote::RemoteSpec>,
    /// Set by [`SpawnOptions::cluster`]: the hosts, and the script to start there.
    pub(crate) cluster: Option<(crate::Cluster, String)>,
}

impl SpawnOptions {
    /// Options to start the executable at `program`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        let mut process = ProcessSpec::new(program);
        process.inherit_env = true;
        SpawnOptions {
            process,
            alias: None,
            group: None,
            output: Output::default(),
            default_timeout: Timeout::Inherit,
            catch_all: None,
            close_grace: DEFAULT_CLOSE_GRACE,
            limits: Limits::default(),
            wait_ready: true,
            remote: None,
            cluster: None,
        }
    }

    /// Options to start `script` on the `distio-serve` host at `host`
    /// (`ws://[user:password@]host[:port]`, or `host:port`; see [`Host`](crate::Host)), with
    /// the same API as a local slave once started: [`Slave::location`](crate::Slave::location)
    /// is [`Location::Remote`](crate::Location::Remote) and
    /// [`Slave::is_remote`](crate::Slave::is_remote) is true.
    ///
    /// The script's path is relative to the server's root; the server decides how it runs
    /// (interpreter, environment, working directory), so [`env`](Self::env) and
    /// [`current_dir`](Self::current_dir) make the spawn fail with
    /// [`MasterError::RemoteOption`]. The master holds one session (one connection,
    /// one authentication) per host and runs all its slaves there over it. A bad URL, an
    /// unreachable host, refused credentials, or a refused script fail the spawn with an
    /// error naming the host.
    ///
    /// ```no_run
    /// use distio_master::{Master, SpawnOptions};
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let master = Master::new();
    /// let slaves = master
    ///     .spawn_many(5, SpawnOptions::remote("ws://user:pass@build-7:1337", "workers/square.py"))
    ///     .await?;
    /// assert!(slaves.iter().all(|s| s.is_remote()));
    /// # Ok(()) }
    /// ```
    pub fn remote(host: impl Into<String>, script: impl Into<String>) -> Self {
        let script = script.into();
        let mut options = SpawnOptions::new(script.clone());
        options.remote = Some(crate::remote::RemoteSpec {
            url: host.into(),
            script,
            credentials: None,
            tls: None,
            passphrase: None,
            link: None,
        });
        options
    }

    /// For a [`remote`](Self::remote) slave: how its session with the host keeps its link
    /// alive and how long a dropped link may take to resume (default
    /// [`LinkSettings::default`](crate::LinkSettings::default)).
    ///
    /// ```
    /// use distio_master::{LinkSettings, SpawnOptions};
    /// let options = SpawnOptions::remote("build-7:1337", "worker.sh")
    ///     .link(LinkSettings::default());
    /// assert!(options.is_remote());
    /// ```
    #[must_use]
    pub fn link(mut self, link: crate::LinkSettings) -> Self {
        if let Some(remote) = &mut self.remote {
            remote.link = Some(link);
        }
        self
    }

    /// The user and password for a remote slave's host (replacing any in its URL). Ignored
    /// for local slaves.
    ///
    /// ```
    /// let opts = distio_master::SpawnOptions::remote("build-7:1337", "square.sh")
    ///     .credentials("ops", "s3cret");
    /// assert!(!format!("{opts:?}").contains("s3cret"));
    /// ```
    #[must_use]
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        if let Some(remote) = &mut self.remote {
            remote.credentials = Some((user.into(), password.into()));
        }
        self
    }

    /// How TLS is done with a `wss://` host (its CA, a client certificate); see
    /// [`ClientTls`](crate::ClientTls). Without it a `wss://` host is verified against the
    /// system's root certificates. Ignored for local slaves.
    ///
    /// ```
    /// use distio_master::{ClientTls, SpawnOptions};
    /// let opts = SpawnOptions::remote("wss://build-7:1337", "square.sh")
    ///     .tls(ClientTls::new().ca_file("/etc/distio/ca.pem"));
    /// assert!(opts.is_remote());
    /// ```
    #[must_use]
    pub fn tls(mut self, tls: crate::ClientTls) -> Self {
        if let Some(remote) = &mut self.remote {
            remote.tls = Some(tls);
        }
        self
    }

    /// The passphrase of a remote slave's host, for a server in passphrase mode: the
    /// master proves it knows it without sending it, and the session is sealed with keys
    /// derived from it (see [`Host::with_passphrase`](crate::Host::with_passphrase)).
    /// Never shown by `Debug`. Ignored for local slaves.
    ///
    /// ```
    /// let opts = distio_master::SpawnOptions::remote("build-7:1337", "square.sh")
    ///     .passphrase("correct horse battery staple");
    /// assert!(!format!("{opts:?}").contains("horse"));
    /// ```
    #[must_use]
    pub fn passphrase(mut self, passphrase: impl Into<String>) -> Self {
        if let Some(remote) = &mut self.remote {
            remote.passphrase = Some(std::sync::Arc::new(
                distio_proto::remote::passphrase::Passphrase::new(passphrase),
            ));
        }
        self
    }

    /// Options to start `script` on a host of `cluster`, chosen by its
    /// [`Placement`](crate::Placement) (see [`Cluster`](crate::Cluster)). With
    /// [`Master::spawn_many`](crate::Master::spawn_many), the slaves are spread over the
    /// hosts and come back as one [`SlaveArray`](crate::SlaveArray); a host that refuses
    /// (full, stopping, unreachable) is skipped for the next. Credentials, TLS and the
    /// passphrase are the cluster's; [`credentials`](Self::credentials),
    /// [`tls`](Self::tls) and [`passphrase`](Self::passphrase) do not apply. As for
    /// [`remote`](Self::remote), the server decides how the script runs.
    ///
    /// ```no_run
    /// use distio_master::{Cluster, Master, SpawnOptions};
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let cluster = Cluster::builder().urls(["ws://n1:1337", "ws://n2:1337"]).build().await?;
    /// let slaves = Master::new()
    ///     .spawn_many(8, SpawnOptions::cluster(&cluster, "square.sh").group("squares"))
    ///     .await?;
    /// assert!(slaves.iter().all(|s| s.is_remote()));
    /// # Ok(()) }
    /// ```
    pub fn cluster(cluster: &crate::Cluster, script: impl Into<String>) -> Self {
        let script = script.into();
        let mut options = SpawnOptions::new(script.clone());
        options.cluster = Some((cluster.clone(), script));
        options
    }

    /// True for options made with [`remote`](Self::remote) or [`cluster`](Self::cluster).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some() || self.cluster.is_some()
    }

    /// Options to start another copy of the running executable, which then detects it was
    /// launched as a slave (see `distio_slave::launched_as_slave`).
    pub fn current_exe() -> Result<Self, MasterError> {
        let exe = std::env::current_exe().map_err(|source| MasterError::Spawn {
            path: PathBuf::from("<current executable>"),
            source,
        })?;
        Ok(SpawnOptions::new(exe))
    }

    /// The executable to start.
    pub fn program(&self) -> &Path {
        self.process.program()
    }

    /// The slave's alias, unique among live slaves. With
    /// [`Master::spawn_many`](crate::Master::spawn_many), later slaves get `alias-1`,
    /// `alias-2`, ….
    #[must_use]
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// The slave's group.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Adds a command-line argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.process = self.process.arg(arg);
        self
    }

    /// Adds command-line arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.process = self.process.args(args);
        self
    }

    /// Sets an environment variable for the slave (on top of the master's environment).
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.process = self.process.env(key, value);
        self
    }

    /// The slave's working directory (default: the master's).
    #[must_use]
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.process = self.process.current_dir(dir);
        self
    }

    /// What to do with the slave's stdout and stderr (default [`Output::Prefixed`]).
    #[must_use]
    pub fn output(mut self, output: Output) -> Self {
        self.output = output;
        self
    }

    /// The slave's default request timeout: a [`Duration`], [`Timeout::Never`] or
    /// [`Timeout::Inherit`] (the master's; the default). A request's own wins. Same as
    /// [`Slave::set_default_timeout`](crate::Slave::set_default_timeout) once started.
    ///
    /// ```
    /// use distio_master::{SpawnOptions, Timeout};
    /// use std::time::Duration;
    /// let opts = SpawnOptions::new("./worker").default_timeout(Duration::from_secs(3));
    /// let none = SpawnOptions::new("./worker").default_timeout(Timeout::Never);
    /// # drop((opts, none));
    /// ```
    #[must_use]
    pub fn default_timeout(mut self, timeout: impl Into<Timeout>) -> Self {
        self.default_timeout = timeout.into();
        self
    }

    /// The slave's default catch-all setting (`None`: the master's; the default). A
    /// request's own wins. Same as
    /// [`Slave::set_default_catch_all`](crate::Slave::set_default_catch_all) once started.
    ///
    /// ```
    /// let opts = distio_master::SpawnOptions::new("./worker").default_catch_all(true);
    /// # drop(opts);
    /// ```
    #[must_use]
    pub fn default_catch_all(mut self, catch_all: impl Into<Option<bool>>) -> Self {
        self.catch_all = catch_all.into();
        self
    }

    /// How long `close` waits for the slave to exit before killing it (default 5 s).
    #[must_use]
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// Whether [`Master::spawn`](crate::Master::spawn) returns only once the slave has
    /// finished its handshake (default `true`, bounded by
    /// [`READY_TIMEOUT`](crate::READY_TIMEOUT): a slave that does not answer in time, or
    /// breaks the handshake, is killed and `spawn` fails with
    /// [`MasterError::NotReady`](crate::MasterError::NotReady)). With `false`, `spawn`
    /// returns as soon as the process has started; requests sent meanwhile are queued and
    /// [`Slave::ready`](crate::Slave::ready) waits for the handshake.
    ///
    /// ```
    /// use distio_master::SpawnOptions;
    /// let opts = SpawnOptions::new("./worker").wait_ready(false);
    /// # drop(opts);
    /// ```
    #[must_use]
    pub fn wait_ready(mut self, wait: bool) -> Self {
        self.wait_ready = wait;
        self
    }

    /// How many requests the slave may have unanswered at once (default
    /// [`DEFAULT_MAX_IN_FLIGHT`](crate::DEFAULT_MAX_IN_FLIGHT); at least 1). Requests beyond
    /// it wait in order for a place, their timeouts running.
    #[must_use]
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.limits.max_in_flight = max.max(1);
        self
    }

    /// How many bytes of frames may wait for the slave to read them (default
    /// [`DEFAULT_OUTBOX_LIMIT`](crate::DEFAULT_OUTBOX_LIMIT)). Beyond it, new requests wait
    /// in order, unencoded, until the slave has read enough of them.
    #[must_use]
    pub fn outbox_limit(mut self, bytes: usize) -> Self {
        self.limits.outbox_limit = bytes.max(1);
        self
    }

    /// How long `shutdown` waits for the slave to finish its pending requests and exit
    /// before falling back to `close` (default
    /// [`DEFAULT_SHUTDOWN_GRACE`](crate::DEFAULT_SHUTDOWN_GRACE)).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.limits.shutdown_grace = grace;
        self
    }
}

/// Captured output of a slave started with [`Output::Capture`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// What the slave wrote to stdout (the newest [`CAPTURE_LIMIT`] bytes).
    pub stdout: Vec<u8>,
    /// What the slave wrote to stderr (the newest [`CAPTURE_LIMIT`] bytes).
    pub stderr: Vec<u8>,
}

/// The newest [`CAPTURE_LIMIT`] bytes of each stream. A ring buffer: appending costs the
/// bytes appended, not the bytes kept (a slave writing many short lines, relayed one line
/// at a time for a remote slave, must not cost a megabyte's move per line).
#[derive(Debug, Default)]
pub(crate) struct Captured {
    stdout: Mutex<VecDeque<u8>>,
    stderr: Mutex<VecDeque<u8>>,
}

impl Captured {
    /// Appends to the captured stream, keeping the newest [`CAPTURE_LIMIT`] bytes.
    pub(crate) fn append(&self, stderr: bool, data: &[u8]) {
        let mut buf = lock(if stderr { &self.stderr } else { &self.stdout });
        let data = &data[data.len().saturating_sub(CAPTURE_LIMIT)..];
        let excess = (buf.len() + data.len()).saturating_sub(CAPTURE_LIMIT);
        buf.drain(..excess);
        buf.extend(data);
    }

    pub(crate) fn snapshot(&self) -> CapturedOutput {
        let copy = |buf: &Mutex<VecDeque<u8>>| lock(buf).iter().copied().collect();
        CapturedOutput {
            stdout: copy(&self.stdout),
            stderr: copy(&self.stderr),
        }
    }
}

/// A started child process, before the master wires it up.
pub(crate) struct LocalChild {
    pub(crate) link: Link,
    pub(crate) pid: u32,
    pub(crate) process: LocalProcess,
    pub(crate) captured: Option<Arc<Captured>>,
}

/// A slave process and its process group. Dropped, it kills the whole group, then the
/// process (which `kill_on_drop` also does, and which tokio then reaps), and lets the
/// output pumps go (see [`until_stopped`]).
pub(crate) struct LocalProcess {
    handle: ProcessHandle,
    _pumps: watch::Sender<()>,
}

fn check_program(path: &Path) -> Result<(), MasterError> {
    // A bare name is looked up on PATH by the operating system.
    if path.components().count() == 1 && !path.exists() {
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|_| MasterError::ProgramNotFound {
        path: path.to_owned(),
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(MasterError::ProgramNotExecutable {
            path: path.to_owned(),
        });
    }
    Ok(())
}

pub(crate) async fn spawn_local(
    options: &SpawnOptions,
    label: String,
) -> Result<LocalChild, MasterError> {
    check_program(options.program())?;
    let mut spec = options.process.clone();
    spec.stdio = match options.output {
        Output::Inherit => Stdout::Inherit,
        Output::Null => Stdout::Null,
        Output::Prefixed | Output::Capture => Stdout::Piped,
    };
    let started = spec.start().await.map_err(|source| MasterError::Spawn {
        path: options.program().to_owned(),
        source,
    })?;
    let pid = started.handle.pid();
    let (stdout, stderr) = (started.stdout, started.stderr);
    let (pumps, pumps_stopped) = watch::channel(());
    let process = LocalProcess {
        handle: started.handle,
        _pumps: pumps,
    };
    let link = Link::from_unix(started.socket);

    let pump = |pump| {
        // Detached: it ends at the end of its stream, or soon after `process` is gone.
        tokio::spawn(until_stopped(pump, pumps_stopped.clone()));
    };
    let captured = match options.output {
        Output::Prefixed => {
            let prefix = format!("[{label}] ");
            if let Some(out) = stdout {
                pump(Box::pin(process::relay_lines(out, prefix.clone(), false)));
            }
            if let Some(err) = stderr {
                pump(Box::pin(process::relay_lines(err, prefix, true)));
            }
            None
        }
        Output::Capture => {
            let store = Arc::new(Captured::default());
            if let Some(out) = stdout {
                let store = Arc::clone(&store);
                pump(Box::pin(async move { capture(out, &store, false).await }));
            }
            if let Some(err) = stderr {
                let store = Arc::clone(&store);
                pump(Box::pin(async move { capture(err, &store, true).await }));
            }
            Some(store)
        }
        Output::Inherit | Output::Null => None,
    };
    Ok(LocalChild {
        link,
        pid,
        process,
        captured,
    })
}

/// A pump copying a slave's output stream.
type Pump = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `pump` until its stream ends, or until [`EXIT_GRACE`](crate::slave_core::EXIT_GRACE)
/// after the slave's [`LocalProcess`] is dropped: the pump drains what the slave wrote
/// before it ended, but a process that left the slave's group and kept the pipe open does
/// not keep the pump forever.
async fn until_stopped(pump: Pump, mut process_gone: watch::Receiver<()>) {
    let gone = async move {
        while process_gone.changed().await.is_ok() {}
        tokio::time::sleep(crate::slave_core::EXIT_GRACE).await;
    };
    tokio::select! {
        () = pump => {}
        () = gone => {}
    }
}

/// Keeps the newest [`CAPTURE_LIMIT`] bytes of a child's stream.
async fn capture<R: AsyncRead + Unpin>(mut stream: R, into: &Captured, stderr: bool) {
    let mut chunk = vec![0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => into.append(stderr, &chunk[..n]),
        }
    }
}

/// Waits for the process to exit, kills what is left in its process group and records
/// how it exited. If the link is still open a while after the exit (a process that left
/// the group kept the socket), tells the reader to give up on it. Aborted, it drops the
/// process, which kills its group.
///
/// The group is killed while the exited slave is still a zombie, before tokio reaps it:
/// until then the group's id (the slave's pid) cannot be reused (see
/// [`process::exited_unreaped`]). Where that wait is not possible, the group is killed
/// just after the reaping, as the residual risk described there.
pub(crate) async fn watch_process(core: Arc<SlaveCore>, mut process: LocalProcess) {
    match process.handle.wait().await {
        Ok(status) => core.record_exit(status),
        Err(err) => tracing::warn!(slave = core.id, "could not wait for slave process: {err}"),
    }
    tokio::time::sleep(crate::slave_core::EXIT_GRACE).await;
    core.end_link.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_output_keeps_the_newest_bytes_of_each_stream() {
        let store = Captured::default();
        for n in 0..CAPTURE_LIMIT / 2 {
            store.append(false, format!("{:03}\n", n % 1000).as_bytes());
        }
        store.append(true, b"err\n");
        let snap = store.snapshot();
        assert_eq!(snap.stdout.len(), CAPTURE_LIMIT);
        assert!(
            snap.stdout
                .ends_with(format!("{:03}\n", (CAPTURE_LIMIT / 2 - 1) % 1000).as_bytes())
        );
        assert_eq!(snap.stderr, b"err\n");
        // One append larger than the limit keeps its tail.
        let big: Vec<u8> = (0..CAPTURE_LIMIT + 10).map(|i| (i % 251) as u8).collect();
        store.append(true, &big);
        assert_eq!(store.snapshot().stderr, big[10..]);
    }
}
