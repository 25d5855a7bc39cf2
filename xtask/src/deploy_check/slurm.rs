//! `deploy-check slurm`: runs `deploy/slurm/distio.sbatch` for real on a one-node Slurm cluster
//! started on this machine, and checks the master's result.
//!
//! 1. Installs Debian's `slurm-wlm` and `munge` if `slurmd` or `munged` is missing.
//! 2. Builds `distio-serve` and the `slurm_master` example.
//! 3. Writes, in a scratch directory under the target directory, a munge key and a one-node
//!    `slurm.conf` (node `localhost` at `NodeAddr=127.0.0.1`, free loopback ports, state, spool,
//!    pid and log files in the scratch directory, `SlurmUser=root`), and starts `munged -F`,
//!    `slurmctld -D` and `slurmd -D -N localhost` as children of this process.
//! 4. Waits (bounded) until `sinfo` shows the node idle, submits the batch script with `sbatch`
//!    and polls `scontrol show job` (bounded) until the job ends.
//! 5. The job must have completed with exit code 0, the master's output must hold the right sum,
//!    and the server must have listened on 127.0.0.1 and stopped on SIGTERM (a drain).
//! 6. Cancels the job if it is still there and stops the daemons, on success and on failure
//!    alike (a guard also does it if this panics); an error ends with the logs' tails.
//!
//! Everything stays on loopback: the node is `localhost`, so the script binds the server to
//! 127.0.0.1 and the master connects there. The job runs as root (as does the check: slurmd
//! must), so the check tells the server that slaves may run as root
//! (`DISTIO_SERVE_CONTAINMENT__ALLOW_ROOT_SLAVES=true`; a real cluster runs jobs as their
//! owner). Needs root and takes about half a minute once built.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{build_server, ensure_apt, scratch, target_dir};
use crate::cmd;

/// How long the node may take to come up idle.
const NODE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the job may take from submission to its end.
const JOB_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a cancelled job may take to leave the node.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(45);
/// How long a daemon may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The numbers the example master sums the squares of: 1..=N.
const N: u128 = 100_000;

pub(super) fn run() -> Result<(), String> {
    let started = Instant::now();
    if cmd::output("id", &["-u"]).as_deref().map(str::trim) != Some("0") {
        return Err(
            "deploy-check slurm must run as root (slurmd runs jobs as their owner and this \
             one-node cluster runs with SlurmUser=root)"
                .to_owned(),
        );
    }
    ensure_apt("slurmd", &["slurm-wlm", "munge"])?;
    ensure_apt("munged", &["munge"])?;
    let server = build_server()?;
    let master = build_master()?;
    let dir = scratch("slurm")?;
    let mut cluster = Cluster::new(dir.clone())?;
    let outcome = cluster
        .start()
        .and_then(|()| cluster.wait_idle())
        .and_then(|()| cluster.run_job(&server, &master));
    let stopped = cluster.stop();
    let outcome = match (outcome, stopped) {
        (Ok(()), Ok(())) => Ok(()),
        (Ok(()), Err(err)) => Err(err),
        (Err(err), Ok(())) => Err(err),
        (Err(err), Err(stop)) => Err(format!("{err}\n(and while stopping: {stop})")),
    };
    match outcome {
        Ok(()) => {
            println!(
                "deploy-check slurm: ok in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(err) => Err(format!(
            "deploy-check slurm: {err}\n{}",
            cluster.log_tails()
        )),
    }
}

/// Builds the example master the batch script runs (and its servers spawn as the slave).
fn build_master() -> Result<PathBuf, String> {
    cmd::run(
        "cargo",
        &[
            "build",
            "-p",
            "distio-examples",
            "--example",
            "slurm_master",
        ],
        &[],
    )?;
    let bin = target_dir().join("debug/examples/slurm_master");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("cargo built no {}", bin.display()))
    }
}

/// The one-node cluster: its scratch directory, config, and the daemons this process started.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    ports: [u16; 3],
    /// `(name, child)`, in start order: munged, slurmctld, slurmd.
    daemons: Vec<(&'static str, Child)>,
    /// The submitted job, to cancel if it has not ended when the cluster stops.
    job: Option<String>,
}

impl Cluster {
    fn new(dir: PathBuf) -> Result<Self, String> {
        Ok(Cluster {
            conf: dir.join("slurm.conf"),
            dir,
            ports: free_ports()?,
            daemons: Vec::new(),
            job: None,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A Slurm client command pointed at this cluster.
    fn slurm(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }

    fn start(&mut self) -> Result<(), String> {
        let [ctld_port, slurmd_port, _] = self.ports;
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(self.path(sub))
                .map_err(|err| format!("cannot create {sub} in {}: {err}", self.dir.display()))?;
        }
        let key = self.path("munge.key");
        write_private(&key, &read_random(1024)?)?;
        let d = self.dir.display();
        let conf = format!(
            "# deploy-check slurm: a one-node cluster on loopback (written by cargo xtask)\n\
             ClusterName=distiocheck\n\
             SlurmctldHost=localhost\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             SlurmUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={d}/munge.sock\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             ReturnToService=2\n\
             MpiDefault=none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             MailProg=/bin/true\n\
             NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n"
        );
        std::fs::write(&self.conf, conf)
            .map_err(|err| format!("cannot write {}: {err}", self.conf.display()))?;
        println!(
            "slurm.conf: {} (ports {ctld_port}, {slurmd_port})",
            self.conf.display()
        );

        let mut munged = Command::new("munged");
        munged
            .args(["-F", "--force"])
            .arg(format!("--key-file={d}/munge.key"))
            .arg(format!("--socket={d}/munge.sock"))
            .arg(format!("--pid-file={d}/munged.pid"))
            .arg(format!("--log-file={d}/munged.log"))
            .arg(format!("--seed-file={d}/munged.seed"));
        self.spawn("munged", munged)?;
        self.wait_for("munged's socket", Duration::from_secs(20), |c| {
            Ok(c.path("munge.sock").exists())
        })?;
        let mut ctld = self.slurm("slurmctld");
        ctld.arg("-D");
        self.spawn("slurmctld", ctld)?;
        let mut slurmd = self.slurm("slurmd");
        slurmd.args(["-D", "-N", "localhost"]);
        self.spawn("slurmd", slurmd)
    }

    fn spawn(&mut self, name: &'static str, mut command: Command) -> Result<(), String> {
        let out = std::fs::File::create(self.path(&format!("{name}.out")))
            .map_err(|err| format!("cannot create {name}.out: {err}"))?;
        let err = out
            .try_clone()
            .map_err(|err| format!("cannot clone {name}.out: {err}"))?;
        println!("\n==> {command:?} (output in {name}.out)");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|err| format!("could not start {name}: {err}"))?;
        self.daemons.push((name, child));
        Ok(())
    }

    /// An error if a daemon has exited (they all run until stopped).
    fn check_daemons(&mut self) -> Result<(), String> {
        for (name, child) in &mut self.daemons {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{name} exited early ({status})"));
            }
        }
        Ok(())
    }

    /// Polls `ready` every half second until it holds, a daemon dies, or `limit` passes.
    fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut(&mut Self) -> Result<bool, String>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            self.check_daemons()
                .map_err(|err| format!("waiting for {what}: {err}"))?;
            if ready(self)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{what}: not within {}s", limit.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn wait_idle(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::new();
        self.wait_for("node localhost idle in sinfo", NODE_IDLE_TIMEOUT, |c| {
            let out = c
                .slurm("sinfo")
                .args(["-h", "-N", "-n", "localhost", "-o", "%T"])
                .output();
            last = match out {
                Ok(out) => format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(err) => format!("sinfo: {err}"),
            };
            Ok(last == "idle")
        })
        .map_err(|err| format!("{err} (sinfo last said `{last}`)"))?;
        println!(
            "sinfo: node localhost idle after {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn run_job(&mut self, server: &Path, master: &Path) -> Result<(), String> {
        let script = cmd::root().join("deploy/slurm/distio.sbatch");
        let port = self.ports[2].to_string();
        let mut sbatch = self.slurm("sbatch");
        sbatch
            .arg("--parsable")
            .arg(&script)
            .current_dir(&self.dir)
            .env("DISTIO_SERVE", server)
            .env("DISTIO_MASTER", master)
            .env("DISTIO_PORT", &port)
            .env("DISTIO_READY_TIMEOUT", "60")
            .env("DISTIO_SERVE_CONTAINMENT__ALLOW_ROOT_SLAVES", "true");
        let (ok, out, err) = super::capture(&mut sbatch)?;
        if !ok {
            return Err(format!("sbatch failed:\n{out}{err}"));
        }
        let job = out
            .trim()
            .split(';')
            .next()
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("sbatch printed no job id:\n{out}{err}"))?
            .to_owned();
        self.job = Some(job.clone());
        println!("sbatch: job {job} (distio-serve on 127.0.0.1:{port})");

        let started = Instant::now();
        let mut state = (String::new(), String::new());
        self.wait_for(&format!("job {job} to end"), JOB_TIMEOUT, |c| {
            state = c.job_state(&job);
            Ok(is_final(&state.0))
        })
        .map_err(|err| {
            format!(
                "{err} (last state {}); output so far:\n{}",
                state.0,
                self.job_output(&job)
            )
        })?;
        let (state, exit) = state;
        println!(
            "job {job}: {state}, exit code {exit}, after {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let output = self.job_output(&job);
        println!("--- job output ---\n{}--- end ---", output);
        if state != "COMPLETED" || exit != "0:0" {
            return Err(format!(
                "job {job} ended {state} with exit code {exit}; its output:\n{output}"
            ));
        }
        let sum = N * (N + 1) * (2 * N + 1) / 6;
        let expected = format!("slurm_master: ok: sum of squares 1..={N} = {sum} over 1 host(s)");
        if !output.lines().any(|line| line == expected) {
            return Err(format!("the master's output lacks `{expected}`:\n{output}"));
        }
        let serve_log = self.serve_log(&job);
        let listening = format!("listening on 127.0.0.1:{port}");
        if !serve_log.contains(&listening) {
            return Err(format!(
                "distio-serve did not log `{listening}` (loopback only):\n{serve_log}"
            ));
        }
        if !serve_log.contains("SIGTERM: stopping") {
            return Err(format!(
                "distio-serve was not stopped by SIGTERM at the job's end:\n{serve_log}"
            ));
        }
        println!(
            "job {job}: the master's sum is right; distio-serve listened on 127.0.0.1 and drained on SIGTERM"
        );
        self.job = None;
        Ok(())
    }

    /// `(JobState, ExitCode)` from `scontrol show job`, empty if it cannot tell.
    fn job_state(&self, job: &str) -> (String, String) {
        let Ok(out) = self
            .slurm("scontrol")
            .args(["show", "job", "-o", job])
            .output()
        else {
            return Default::default();
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |key: &str| {
            text.split_whitespace()
                .find_map(|word| word.strip_prefix(key))
                .unwrap_or_default()
                .to_owned()
        };
        (field("JobState="), field("ExitCode="))
    }

    /// The batch script's output file (`#SBATCH --output=distio-%j.out` in the submit directory).
    fn job_output(&self, job: &str) -> String {
        std::fs::read_to_string(self.path(&format!("distio-{job}.out")))
            .unwrap_or_else(|err| format!("(no distio-{job}.out: {err})\n"))
    }

    /// The server's output and log (the script keeps them per job, named after the node's host
    /// name as srun's `%N` gives it).
    fn serve_log(&self, job: &str) -> String {
        let dir = self.path(&format!("distio-serve-{job}"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        if files.is_empty() {
            return format!("(no server output in {})\n", dir.display());
        }
        files
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .collect()
    }

    /// Cancels the job if it has not ended, then stops the daemons: SIGTERM, then SIGKILL after
    /// a bound. Safe to call twice.
    fn stop(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(job) = self.job.take() {
            if !self.daemons.is_empty() && !is_final(&self.job_state(&job).0) {
                println!("cancelling job {job}");
                let _ = self.slurm("scancel").arg(&job).status();
                let deadline = Instant::now() + CANCEL_TIMEOUT;
                while !is_final(&self.job_state(&job).0) {
                    if Instant::now() >= deadline {
                        problems.push(format!(
                            "job {job} was still there {}s after scancel",
                            CANCEL_TIMEOUT.as_secs()
                        ));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        // The reverse of the start order: slurmd, slurmctld, munged.
        while let Some((name, mut child)) = self.daemons.pop() {
            if let Err(err) = stop_child(name, &mut child) {
                problems.push(err);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The last lines of every log, for an error message.
    fn log_tails(&self) -> String {
        // A daemon writes its log file once it has read its config; before that (a config it
        // refuses) only its standard error (`<name>.out`) says why.
        let mut logs: Vec<PathBuf> = ["slurmctld", "slurmd", "munged"]
            .iter()
            .map(|name| {
                let log = self.path(&format!("{name}.log"));
                if log.is_file() {
                    log
                } else {
                    self.path(&format!("{name}.out"))
                }
            })
            .collect();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            let mut more: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .flat_map(|entry| {
                    let path = entry.path();
                    if path.is_dir() {
                        std::fs::read_dir(&path)
                            .map(|inner| inner.filter_map(Result::ok).map(|e| e.path()).collect())
                            .unwrap_or_default()
                    } else {
                        vec![path]
                    }
                })
                .filter(|path| {
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("distio-") || n.starts_with("serve-"))
                })
                .collect();
            more.sort();
            logs.extend(more);
        }
        let mut report = format!("logs in {}:", self.dir.display());
        for path in logs {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(15)..];
                report.push_str(&format!(
                    "\n--- {} (last {} lines)\n",
                    path.display(),
                    tail.len()
                ));
                report.push_str(&tail.join("\n"));
            }
        }
        report
    }
}

impl Drop for Cluster {
    /// Stops whatever is still running if `run` did not (a panic).
    fn drop(&mut self) {
        if !self.daemons.is_empty() || self.job.is_some() {
            let _ = self.stop();
        }
    }
}

/// SIGTERM, a bounded wait, then SIGKILL; always reaps the child.
fn stop_child(name: &str, child: &mut Child) -> Result<(), String> {
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!("{name} had already exited ({status})"));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            println!("stopped {name}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "{name} did not exit within {}s of SIGTERM and was killed",
        STOP_TIMEOUT.as_secs()
    ))
}

/// True for a state in which a job no longer runs; false for an unknown (empty) one.
fn is_final(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "CONFIGURING"
            | "RUNNING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
            | "RESV_DEL_HOLD"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "SPECIAL_EXIT"
    ) && !state.is_empty()
}

/// Three free loopback TCP ports (slurmctld, slurmd, distio-serve), held together while chosen
/// so that they differ.
fn free_ports() -> Result<[u16; 3], String> {
    let listeners = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("cannot find free loopback ports: {err}"))?;
    let mut ports = [0; 3];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .map_err(|err| format!("cannot find free loopback ports: {err}"))?
            .port();
    }
    Ok(ports)
}

/// `len` random bytes for the munge key.
fn read_random(len: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = vec![0; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|err| format!("cannot read /dev/urandom: {err}"))?;
    Ok(bytes)
}

/// Writes `bytes` to a new file readable by its owner only (munged refuses anything wider).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|err| format!("cannot write {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::is_final;

    #[test]
    fn tells_ended_jobs() {
        assert!(is_final("COMPLETED"));
        assert!(is_final("FAILED"));
        assert!(is_final("CANCELLED"));
        assert!(is_final("TIMEOUT"));
        assert!(!is_final("RUNNING"));
        assert!(!is_final("PENDING"));
        assert!(!is_final("COMPLETING"));
        assert!(!is_final(""));
    }
}
