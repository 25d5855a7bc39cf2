//! `cargo xtask ci`: the checks CI runs, in order.

use crate::cmd::{self, output};

/// cargo-deny release CI installs when the machine has none (known to build on this toolchain).
const CARGO_DENY_VERSION: &str = "0.20.2";

/// The README's test command; CI runs exactly this.
pub(crate) const TEST_COMMAND: [&str; 2] = ["test", "--workspace"];

pub(crate) fn run() -> Result<(), String> {
    ensure_components()?;
    ensure_cargo_deny()?;
    ensure_iproute2()?;
    cmd::run("cargo", &["fmt", "--all", "--check"], &[])?;
    cmd::run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    cmd::run("cargo", &TEST_COMMAND, &[])?;
    cmd::run(
        "cargo",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    // `advisories` needs the advisory database from the network, which CI machines lack.
    cmd::run(
        "cargo",
        &["deny", "check", "licenses", "bans", "sources"],
        &[],
    )?;
    // The deploy/ files: the systemd unit (verify, security rating <= 2.9, its config loads)
    // and the Kubernetes manifests (pinned schemas, pod policy). Installs systemd-analyze and
    // kubernetes-validate when missing. The Slurm check is slow and runs by hand.
    crate::deploy_check::run(&["all".to_owned()])?;
    // Keeps the benchmark harness from rotting; never fails on speed.
    crate::bench::run(&["--smoke".to_owned()])?;
    println!("\nci: all checks passed");
    Ok(())
}

fn ensure_components() -> Result<(), String> {
    let installed = output("rustup", &["component", "list", "--installed"]).unwrap_or_default();
    for component in ["rustfmt", "clippy"] {
        if !installed.lines().any(|line| line.starts_with(component)) {
            cmd::run("rustup", &["component", "add", component], &[])?;
        }
    }
    Ok(())
}

fn ensure_cargo_deny() -> Result<(), String> {
    if output("cargo", &["deny", "--version"]).is_some() {
        return Ok(());
    }
    cmd::run(
        "cargo",
        &[
            "install",
            "cargo-deny",
            "--locked",
            "--version",
            CARGO_DENY_VERSION,
        ],
        &[],
    )
}

/// The multi-host tests (`distio-serve`'s `netns_lab`, `cluster_netns`, `resume_netns`) build
/// network namespaces with `ip` from iproute2 (they skip, saying so, when not run as root).
fn ensure_iproute2() -> Result<(), String> {
    let works = std::process::Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        return Ok(());
    }
    crate::deploy_check::apt_install(&["iproute2"])
}
