//! `deploy-check systemd`: the unit verifies cleanly, is rated "OK" or better by
//! `systemd-analyze security`, and the shipped `serve.toml` is one the server accepts.

use std::path::Path;
use std::process::Command;

use super::{build_server, capture, ensure_apt, scratch};
use crate::cmd;

/// The highest overall exposure accepted: systemd rates 2.9 and below "OK".
const MAX_EXPOSURE: f64 = 2.9;
/// Where the unit expects the binary; the check points a copy of the unit at the built one.
const INSTALLED_BINARY: &str = "/usr/local/bin/distio-serve";

pub(super) fn run() -> Result<(), String> {
    ensure_apt("systemd-analyze", &["systemd"])?;
    let server = build_server()?;
    let unit_src = cmd::root().join("deploy/systemd/distio-serve.service");
    let unit = std::fs::read_to_string(&unit_src)
        .map_err(|err| format!("cannot read {}: {err}", unit_src.display()))?;
    if !unit.contains(INSTALLED_BINARY) {
        return Err(format!("the unit no longer starts {INSTALLED_BINARY}"));
    }
    let dir = scratch("systemd")?;
    // `verify` checks that ExecStart is an executable file; no systemd needs to run.
    let copy = dir.join("distio-serve.service");
    write(
        &copy,
        &unit.replace(INSTALLED_BINARY, &server.to_string_lossy()),
    )?;
    verify(&copy)?;
    security(&copy)?;
    config_is_accepted(&server, &dir)?;
    println!("deploy-check systemd: ok");
    Ok(())
}

/// `systemd-analyze verify` exits 0 even for an unknown key (a typo that silently drops a
/// protection), so any message at all fails the check.
fn verify(unit: &Path) -> Result<(), String> {
    let (ok, out, err) = capture(Command::new("systemd-analyze").arg("verify").arg(unit))?;
    let said = format!("{out}{err}");
    if ok && said.trim().is_empty() {
        println!("systemd-analyze verify: clean");
        Ok(())
    } else {
        Err(format!("systemd-analyze verify found problems:\n{said}"))
    }
}

fn security(unit: &Path) -> Result<(), String> {
    let (ok, out, err) = capture(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit)
            .env("SYSTEMD_COLORS", "0"),
    )?;
    if !ok {
        return Err(format!("systemd-analyze security failed:\n{out}{err}"));
    }
    let exposure = overall_exposure(&out)
        .ok_or_else(|| format!("no overall exposure level in:\n{out}{err}"))?;
    println!("systemd-analyze security: overall exposure {exposure} (at most {MAX_EXPOSURE})");
    if exposure <= MAX_EXPOSURE {
        Ok(())
    } else {
        let missing: Vec<&str> = out.lines().filter(|l| l.starts_with('✗')).collect();
        Err(format!(
            "the unit's exposure {exposure} is above {MAX_EXPOSURE}; unmet settings:\n{}",
            missing.join("\n")
        ))
    }
}

/// The number in `→ Overall exposure level for X.service: 1.2 OK 🙂`.
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|line| line.contains("Overall exposure level"))?;
    line.rsplit_once(": ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The shipped config, and the same with every commented-out key switched on, load in the real
/// server (`--print-config`), with `root` pointed at a directory that exists here.
fn config_is_accepted(server: &Path, dir: &Path) -> Result<(), String> {
    let shipped_path = cmd::root().join("deploy/systemd/serve.toml");
    let shipped = std::fs::read_to_string(&shipped_path)
        .map_err(|err| format!("cannot read {}: {err}", shipped_path.display()))?;
    let all_keys: String = shipped
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => rest,
            _ => line,
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    let all_path = dir.join("serve-all-keys.toml");
    write(&all_path, &all_keys)?;
    for config in [&shipped_path, &all_path] {
        let (ok, _, err) = capture(
            Command::new(server)
                .arg("--config")
                .arg(config)
                .arg("--print-config")
                .env("DISTIO_SERVE_ROOT", dir),
        )?;
        if !ok {
            return Err(format!("distio-serve refuses {}:\n{err}", config.display()));
        }
    }
    println!("serve.toml: accepted by distio-serve, with and without its commented keys");
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|err| format!("cannot write {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::overall_exposure;

    #[test]
    fn reads_the_overall_exposure() {
        let report =
            "✓ UMask= ...\n\n→ Overall exposure level for distio-serve.service: 1.2 OK 🙂\n";
        assert_eq!(overall_exposure(report), Some(1.2));
        assert_eq!(overall_exposure("nothing here"), None);
    }
}
