//! `cargo xtask fuzz [--cases N]`: the long run of the hostile-input tests, in release.
//! Every decoder the server exposes (session frames through the codec and the server's
//! session machine, slave frames through the stream decoder, the `Authorization: Basic`
//! parser, stored password hashes, the TOML configuration) gets N generated hostile
//! inputs (1 000 000 by default); the run prints each one's count, time and findings and
//! fails on the first finding.

use crate::cmd;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let cases = match args {
        [] => "1000000".to_owned(),
        [flag, n] if flag == "--cases" => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{n}` is not a positive number of cases"))?
            .to_string(),
        _ => return Err("usage: cargo xtask fuzz [--cases N]".to_owned()),
    };
    cmd::run(
        "cargo",
        &[
            "test",
            "--release",
            "-p",
            "distio-serve",
            "--test",
            "attack_frames",
            "fuzz_every_decoder_the_server_exposes",
            "--",
            "--ignored",
            "--nocapture",
        ],
        &[("DISTIO_FUZZ_CASES", &cases)],
    )
}
