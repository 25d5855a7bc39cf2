//! Developer automation: `cargo xtask <command>`.
//!
//! - `ci`: every check CI runs, in order (the single source of truth; `.ci/run` calls it).
//! - `bench`: the benchmark, distio against the raw IPC floor (`--smoke` for tiny counts).
//! - `soak`: the master's soak test, watching for growth (ten minutes by default).
//! - `deploy-check`: checks the files under `deploy/` (systemd, Kubernetes, Slurm).
//! - `fuzz`: the hostile-input tests on every decoder the server exposes, long (release).

mod bench;
mod ci;
mod cmd;
mod deploy_check;
mod fuzz;
mod soak;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci      install missing tools, then run fmt, clippy, tests, docs, cargo-deny, the
          deploy checks (systemd, kubernetes) and the benchmark in smoke mode
  bench   build the benchmark in release and run it (`--smoke` for tiny counts; other
          flags go to distio-bench, e.g. `--rounds 3 --pipelined 50000`)
  soak    run the master's soak test in release for SECONDS (default 600): mixed load,
          timeouts, kills and respawns; fails if memory, descriptors, threads or
          child processes grow
  fuzz    run the hostile-input tests in release on every decoder distio-serve exposes
          (session frames, slave frames, the Authorization header, password hashes, the
          config file), `--cases N` each (default 1000000); fails on any finding
  deploy-check systemd|kubernetes|slurm|all
          check deploy/: the unit (systemd-analyze verify and security), the
          Kubernetes manifests (schemas of a pinned version, pod policy), or a real
          one-node Slurm run (slow; `all`, the default, is systemd + kubernetes)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("deploy-check") => deploy_check::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown or missing command\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
