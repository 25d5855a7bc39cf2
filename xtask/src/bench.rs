//! `cargo xtask bench [--smoke] [flags…]`: builds the benchmark in release and runs it.
//! Flags after `bench` go to `distio-bench` (see `bench/src/config.rs`).

use std::path::PathBuf;

use crate::cmd;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    cmd::run(
        "cargo",
        &[
            "build",
            "--release",
            "--quiet",
            "-p",
            "distio-bench",
            "--bins",
        ],
        &[],
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| cmd::root().join("target"), PathBuf::from);
    let exe = target.join("release").join("distio-bench");
    let out = target.join("distio-bench");
    let mut bench_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out_text = out.to_string_lossy().into_owned();
    if !args.iter().any(|a| a == "--out") {
        bench_args.extend(["--out", &out_text]);
    }
    cmd::run(&exe.to_string_lossy(), &bench_args, &[])
}
