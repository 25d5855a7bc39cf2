//! distio-bench: every scenario for distio and for the raw IPC floor, interleaved in one
//! run; prints a table and writes JSON. Run it through `cargo xtask bench` (release build).
//!
//! The same binary is the memory probe (`--memory-probe distio|floor SECS`) and the remote
//! scenarios' server (`--serve-probe ROOT`); built beside it are the distio slave
//! (`bench-slave`), the floor's child (`floor-echo`) and the remote floor's relay
//! (`floor-relay`).

mod cluster;
mod config;
mod floor;
mod memory;
mod remote;
mod report;
mod scenarios;
mod stats;

use std::process::ExitCode;

use config::Config;
use report::{Machine, Outcome};
use scenarios::Programs;

fn programs() -> Result<Programs, String> {
    let bench = std::env::current_exe().map_err(|e| e.to_string())?;
    let floor_echo = bench.with_file_name("floor-echo");
    if !floor_echo.exists() {
        return Err(format!(
            "{} is missing; build with `cargo build --release -p distio-bench`",
            floor_echo.display()
        ));
    }
    let floor_relay = bench.with_file_name("floor-relay");
    let slave = bench.with_file_name("bench-slave");
    Ok(Programs {
        floor_echo,
        floor_relay,
        slave,
        bench,
    })
}

async fn run_all(config: &Config, programs: &Programs) -> (Vec<Outcome>, Vec<String>) {
    let (mut outcomes, mut failures) = (Vec::new(), Vec::new());
    let mut keep = |name: &str, result: Result<Vec<Outcome>, String>| match result {
        Ok(rows) => outcomes.extend(rows),
        Err(err) => failures.push(format!("{name}: {err}")),
    };
    if config.runs("sequential") {
        keep("sequential", scenarios::sequential(config, programs).await);
    }
    if config.runs("pipelined") {
        keep("pipelined", scenarios::pipelined(config, programs).await);
    }
    if config.runs("broadcast") {
        keep("broadcast", scenarios::broadcast(config, programs).await);
    }
    if config.runs("workpool") {
        keep("workpool", scenarios::workpool(config, programs).await);
    }
    if config.runs("large") {
        keep("1 MiB echo", scenarios::large(config, programs).await);
    }
    if config.runs("spawn") {
        keep("spawn", scenarios::spawn(config, programs).await);
    }
    if config.runs("memory") {
        keep("memory", scenarios::memory(config, programs).await);
    }
    if config.runs("remote") {
        keep("remote", remote::remote(config, programs).await);
        keep("remote spawn", remote::remote_spawn(config, programs).await);
        keep(
            "remote memory",
            remote::remote_memory(config, programs).await,
        );
    }
    if config.runs("cluster") {
        keep("cluster", cluster::cluster(config, programs).await);
        keep("resume", cluster::resume(config, programs).await);
    }
    (outcomes, failures)
}

fn write_json(
    config: &Config,
    machine: &Machine,
    outcomes: &[Outcome],
    failures: &[String],
) -> Result<std::path::PathBuf, String> {
    std::fs::create_dir_all(&config.out).map_err(|e| e.to_string())?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let record = serde_json::json!({
        "unix_time": stamp,
        "machine": machine,
        "config": config,
        "results": outcomes,
        "failures": failures,
    });
    let name = if config.smoke {
        "smoke.json".to_owned()
    } else {
        format!("bench-{stamp}.json")
    };
    let path = config.out.join(name);
    let text = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    std::fs::write(
        config.out.join("latest.json"),
        serde_json::to_string_pretty(&record).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    Ok(path)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve-probe") {
        let root = args
            .get(1)
            .map(std::path::PathBuf::from)
            .unwrap_or_default();
        return match remote::serve_probe(&root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("serve probe: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some("--memory-probe") {
        return match memory::probe(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("memory probe: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let result = Config::parse(&args).and_then(|config| Ok((config, programs()?)));
    let (config, programs) = match result {
        Ok(ready) => ready,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let machine = Machine::read();
    println!(
        "distio-bench on {machine}{}",
        if config.smoke {
            " (smoke: tiny counts, figures mean nothing)"
        } else {
            ""
        }
    );
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let (outcomes, failures) = runtime.block_on(run_all(&config, &programs));
    print!("{}", report::table(&outcomes, &failures));
    match write_json(&config, &machine, &outcomes, &failures) {
        Ok(path) => println!("wrote {}", path.display()),
        Err(err) => eprintln!("could not write results: {err}"),
    }
    // Speed never fails the run; a scenario that could not run does.
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
