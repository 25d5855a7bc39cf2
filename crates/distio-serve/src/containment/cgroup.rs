//! One cgroup (v2) per slave, where the server's own cgroup can be written.
//!
//! At start the server finds its cgroup (`0::PATH` in `/proc/self/cgroup`, beneath the
//! cgroup2 mount from `/proc/self/mountinfo`), enables the `memory` and `pids` controllers
//! it needs for its children (if its cgroup holds other processes, which the "no internal
//! processes" rule forbids, it first moves itself into a leaf `distio-serve-PID-server`
//! beside them) and creates `distio-serve-PID-N` for its slaves. Each slave gets
//! `slave-K` below it with `memory.max` and `pids.max`; the child joins it before exec
//! (through `cgroup.procs`, opened before the fork), so everything it starts, even a
//! double-forked `setsid` daemon, is in it. Ending the slave writes `cgroup.kill`, which
//! SIGKILLs every process of the cgroup, then removes it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long removing an ended slave's cgroup may wait for its processes to be gone.
const REMOVE_WITHIN: Duration = Duration::from_secs(5);

/// The cgroup holding the server's slaves.
#[derive(Debug)]
pub(crate) struct SlaveCgroups {
    dir: PathBuf,
    memory: Option<u64>,
    pids: Option<u64>,
    controllers: Vec<&'static str>,
    next: AtomicU64,
}

/// The cgroup of one slave: killed (every process in it) and removed when it ends.
#[derive(Debug)]
pub(crate) struct SlaveCgroup {
    dir: PathBuf,
}

impl SlaveCgroups {
    /// Sets up the slaves' cgroup, or says why there is none.
    pub(crate) fn set_up(memory: Option<u64>, pids: Option<u64>) -> Result<Self, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = own_cgroup()?;
        sweep_stale(&base);
        let available = read(&base.join("cgroup.controllers"))?;
        let mut wanted = Vec::new();
        if memory.is_some() {
            wanted.push("memory");
        }
        if pids.is_some() {
            wanted.push("pids");
        }
        let mut controllers: Vec<&'static str> = wanted
            .iter()
            .copied()
            .filter(|c| available.split_whitespace().any(|a| a == *c))
            .collect();
        if !controllers.is_empty() && enable(&base, &controllers).is_err() {
            // Processes in `base` itself: move this one into a leaf and try again.
            let leaf = base.join(format!("distio-serve-{}-server", std::process::id()));
            let moved = make_dir(&leaf)
                .and_then(|()| write(&leaf.join("cgroup.procs"), "0"))
                .and_then(|()| enable(&base, &controllers));
            if let Err(err) = moved {
                tracing::warn!(
                    cgroup = %base.display(),
                    "cannot enable the {} controller(s) for the slaves' cgroups ({err}); their \
                     memory and pids limits are not set",
                    controllers.join(" ")
                );
                controllers.clear();
            }
        }
        let dir = base.join(format!(
            "distio-serve-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        make_dir(&dir)?;
        let ready = (|| {
            if !dir.join("cgroup.kill").exists() {
                return Err("the kernel has no cgroup.kill (Linux 5.14 or later)".to_owned());
            }
            if !controllers.is_empty() {
                enable(&dir, &controllers)?;
            }
            Ok(())
        })();
        if let Err(err) = ready {
            let _ = std::fs::remove_dir(&dir);
            return Err(err);
        }
        Ok(SlaveCgroups {
            dir,
            memory,
            pids,
            controllers,
            next: AtomicU64::new(1),
        })
    }

    /// The slaves' cgroup directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The controllers that limit each slave (`memory`, `pids`; may be none).
    pub(crate) fn controllers(&self) -> &[&'static str] {
        &self.controllers
    }

    /// A new cgroup for one slave, with its limits, and its `cgroup.procs` open for the
    /// child to join.
    pub(crate) fn create(&self) -> Result<(SlaveCgroup, OwnedFd), String> {
        let dir = self.dir.join(format!(
            "slave-{}",
            self.next.fetch_add(1, Ordering::Relaxed)
        ));
        make_dir(&dir)?;
        let cgroup = SlaveCgroup { dir };
        let limits = [
            ("memory", "memory.max", self.memory),
            ("pids", "pids.max", self.pids),
        ];
        for (controller, file, value) in limits {
            if let (true, Some(value)) = (self.controllers.contains(&controller), value) {
                write(&cgroup.dir.join(file), &value.to_string())?;
            }
        }
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(cgroup.dir.join("cgroup.procs"))
            .map_err(|err| format!("cannot open {}/cgroup.procs: {err}", cgroup.dir.display()))?;
        Ok((cgroup, procs.into()))
    }
}

impl Drop for SlaveCgroups {
    fn drop(&mut self) {
        // Slaves' cgroups left (their removal timed out) go first.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    let _ = write(&entry.path().join("cgroup.kill"), "1");
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl SlaveCgroup {
    /// SIGKILLs every process in the cgroup.
    pub(crate) fn kill(&self) {
        if let Err(err) = write(&self.dir.join("cgroup.kill"), "1") {
            tracing::warn!(cgroup = %self.dir.display(), "cannot end a slave's cgroup: {err}");
        }
    }

    /// Kills what is left in the cgroup and removes it once empty (giving up, with a
    /// warning, after [`REMOVE_WITHIN`]; the server removes it when it stops).
    pub(crate) async fn end(self) {
        self.kill();
        let deadline = tokio::time::Instant::now() + REMOVE_WITHIN;
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => break,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => break,
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(cgroup = %self.dir.display(), "cannot remove a slave's cgroup: {err}");
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        std::mem::forget(self);
    }
}

impl Drop for SlaveCgroup {
    fn drop(&mut self) {
        self.kill();
        // Usually still busy (the kill is asynchronous); the server removes it at the end.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// This process's cgroup directory in the cgroup2 hierarchy.
/// Removes the slaves' cgroups that servers which are gone left behind (a server killed
/// with SIGKILL cannot remove its own): whatever still runs in them is killed first.
/// Best effort; a cgroup that cannot be removed stays.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("distio-serve-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        let _ = write(&dir.join("cgroup.kill"), "1");
        if let Ok(children) = std::fs::read_dir(&dir) {
            for child in children.flatten() {
                if child.path().is_dir() {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => tracing::debug!(cgroup = %dir.display(), "removed a gone server's cgroup"),
            Err(err) => {
                tracing::debug!(cgroup = %dir.display(), %err, "cannot remove a gone server's cgroup")
            }
        }
    }
}

fn own_cgroup() -> Result<PathBuf, String> {
    let cgroups = read(Path::new("/proc/self/cgroup"))?;
    let path = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2 hierarchy")?;
    let mountinfo = read(Path::new("/proc/self/mountinfo"))?;
    let (mount_root, mount_point) = mountinfo
        .lines()
        .find_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            if fs.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let fields: Vec<&str> = fields.split_whitespace().collect();
            Some((fields.get(3)?.to_string(), fields.get(4)?.to_string()))
        })
        .ok_or("no cgroup2 file system is mounted")?;
    let relative = Path::new(path)
        .strip_prefix(&mount_root)
        .map_err(|_| format!("this process's cgroup {path} is not under the cgroup2 mount"))?;
    Ok(Path::new(&mount_point).join(relative))
}

fn enable(dir: &Path, controllers: &[&str]) -> Result<(), String> {
    let text: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
    write(&dir.join("cgroup.subtree_control"), &text.join(" "))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|err| format!("cannot write {}: {err}", path.display()))
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(format!("cannot create the cgroup {}: {err}", dir.display())),
    }
}
