//! Developer automation: `cargo xtask <command>`.
//!
//! - `ci`: every check CI runs, in order (the single source of truth; `.ci/run` calls it).

mod ci;
mod cmd;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci      install missing tools, then run fmt, clippy, tests, docs and cargo-deny";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(),
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
