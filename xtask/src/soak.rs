//! `cargo xtask soak [SECONDS]`: the master's soak test (mixed load, timeouts, kills and
//! respawns), in release, for ten minutes unless told otherwise. It prints the master's
//! memory, descriptors, threads and children as it goes and fails if any of them grow.

use crate::cmd;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let secs = match args.first() {
        Some(secs) => secs
            .parse::<u64>()
            .map_err(|_| format!("`{secs}` is not a number of seconds"))?
            .to_string(),
        None => "600".to_owned(),
    };
    cmd::run(
        "cargo",
        &[
            "test",
            "--release",
            "-p",
            "distio-master",
            "--test",
            "soak",
            "--",
            "--ignored",
            "--nocapture",
        ],
        &[("DISTIO_SOAK_SECS", &secs)],
    )
}
