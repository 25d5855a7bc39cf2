//! `deploy-check kubernetes`: every manifest in `deploy/kubernetes/` validates strictly against
//! the schemas of a pinned Kubernetes version, offline, and meets the pod policy in
//! `k8s_policy.py` (non-root, read-only root file system, no capabilities, probes on the admin
//! port the ConfigMap's server listens on, …).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{capture, scratch, target_dir};
use crate::cmd;

/// `kubernetes-validate` release installed; it ships the schemas, so validation is offline.
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";
/// The Kubernetes version whose schemas the manifests must match.
const KUBERNETES_VERSION: &str = "1.33.0";
/// Checks the schemas cannot express (run with the venv's Python, which has PyYAML).
const POLICY: &str = include_str!("k8s_policy.py");

pub(super) fn run() -> Result<(), String> {
    let python = ensure_validator()?;
    let manifests = manifests()?;
    let mut validate = Command::new(python.with_file_name("kubernetes-validate"));
    validate
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .args(&manifests);
    let (ok, out, err) = capture(&mut validate)?;
    print!("{out}{err}");
    if !ok {
        return Err(format!(
            "the Kubernetes manifests do not match the {KUBERNETES_VERSION} schemas"
        ));
    }
    let dir = scratch("kubernetes")?;
    let policy = dir.join("k8s_policy.py");
    std::fs::write(&policy, POLICY)
        .map_err(|err| format!("cannot write {}: {err}", policy.display()))?;
    let (ok, out, err) = capture(Command::new(&python).arg(&policy).args(&manifests))?;
    print!("{out}{err}");
    if !ok {
        return Err("the Kubernetes manifests break the pod policy".to_owned());
    }
    println!(
        "deploy-check kubernetes: ok ({} manifests)",
        manifests.len()
    );
    Ok(())
}

/// Every `*.yaml` in `deploy/kubernetes/`, sorted.
fn manifests() -> Result<Vec<PathBuf>, String> {
    let dir = cmd::root().join("deploy/kubernetes");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|err| format!("cannot list {}: {err}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(format!("no manifests in {}", dir.display()));
    }
    Ok(found)
}

/// A virtualenv under the target directory with the pinned `kubernetes-validate`; returns its
/// Python. Reused when it already has the pinned version.
fn ensure_validator() -> Result<PathBuf, String> {
    let venv = target_dir().join("deploy-check").join("venv");
    let python = venv.join("bin").join("python3");
    let pinned = format!("kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}");
    if has_pinned(&python) {
        return Ok(python);
    }
    let venv_arg = venv.to_string_lossy().into_owned();
    if !python.is_file() && cmd::run("python3", &["-m", "venv", &venv_arg], &[]).is_err() {
        // Debian's python3 splits venv out.
        super::ensure_apt("python3", &["python3", "python3-venv"])?;
        install_venv_package()?;
        cmd::run("python3", &["-m", "venv", &venv_arg], &[])?;
    }
    let pip = venv.join("bin").join("pip");
    cmd::run(
        &pip.to_string_lossy(),
        &["install", "--quiet", "--disable-pip-version-check", &pinned],
        &[],
    )?;
    if has_pinned(&python) {
        Ok(python)
    } else {
        Err(format!(
            "installing {pinned} into {} failed",
            venv.display()
        ))
    }
}

fn install_venv_package() -> Result<(), String> {
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    cmd::run("apt-get", &["update", "-qq"], &env)?;
    cmd::run(
        "apt-get",
        &[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "python3-venv",
        ],
        &env,
    )
}

fn has_pinned(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args(["-m", "pip", "show", "kubernetes-validate"])
            .output()
            .is_ok_and(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|line| line.trim() == format!("Version: {KUBERNETES_VALIDATE_VERSION}"))
            })
}
