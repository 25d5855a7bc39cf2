//! Command-line settings of the benchmark.

use std::path::PathBuf;
use std::time::Duration;

/// How much work each scenario does.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Config {
    pub(crate) smoke: bool,
    /// Rounds each scenario is split into, alternating distio and floor.
    pub(crate) rounds: usize,
    pub(crate) sequential: usize,
    pub(crate) pipelined: usize,
    pub(crate) window: usize,
    pub(crate) broadcasts: usize,
    pub(crate) workpool_tasks: usize,
    pub(crate) workpool_window: usize,
    pub(crate) mib_echoes: usize,
    pub(crate) spawns: usize,
    /// Upper bound on the time one side of one round of a scenario may take.
    #[serde(skip)]
    pub(crate) cap: Duration,
    pub(crate) memory_secs: f64,
    /// Scenarios to run (all when empty): sequential, pipelined, broadcast, workpool, remote,
    /// large, spawn, memory.
    pub(crate) only: Vec<String>,
    #[serde(skip)]
    pub(crate) out: PathBuf,
}

pub(crate) const USAGE: &str =
    "usage: distio-bench [--smoke] [--rounds N] [--sequential N] [--pipelined N]
       [--window N] [--broadcasts N] [--workpool-tasks N] [--workpool-window N]
       [--mib-echoes N] [--spawns N] [--cap-secs S] [--memory-secs S] [--out DIR]
       [--only sequential,pipelined,broadcast,workpool,large,spawn,memory,remote,cluster]";

impl Config {
    fn full() -> Self {
        Config {
            smoke: false,
            rounds: 5,
            sequential: 20_000,
            pipelined: 200_000,
            window: 1024,
            broadcasts: 5_000,
            workpool_tasks: 50_000,
            workpool_window: 32,
            mib_echoes: 200,
            spawns: 5,
            cap: Duration::from_secs(60),
            memory_secs: 2.0,
            only: Vec::new(),
            out: PathBuf::from("target/distio-bench"),
        }
    }

    fn smoke() -> Self {
        Config {
            smoke: true,
            rounds: 1,
            sequential: 200,
            pipelined: 2_000,
            window: 64,
            broadcasts: 50,
            workpool_tasks: 200,
            workpool_window: 4,
            mib_echoes: 4,
            spawns: 1,
            cap: Duration::from_secs(10),
            memory_secs: 0.2,
            only: Vec::new(),
            out: PathBuf::from("target/distio-bench"),
        }
    }

    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut config = if args.iter().any(|a| a == "--smoke") {
            Config::smoke()
        } else {
            Config::full()
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "--smoke" {
                continue;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let count = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{flag}: `{value}` is not a count"))
            };
            let secs = || {
                value
                    .parse::<f64>()
                    .map_err(|_| format!("{flag}: `{value}` is not a number of seconds"))
            };
            match flag.as_str() {
                "--rounds" => config.rounds = count()?.max(1),
                "--sequential" => config.sequential = count()?.max(1),
                "--pipelined" => config.pipelined = count()?.max(1),
                "--window" => config.window = count()?.max(1),
                "--broadcasts" => config.broadcasts = count()?.max(1),
                "--workpool-tasks" => config.workpool_tasks = count()?.max(2),
                "--workpool-window" => config.workpool_window = count()?.max(1),
                "--mib-echoes" => config.mib_echoes = count()?.max(1),
                "--spawns" => config.spawns = count()?.max(1),
                "--cap-secs" => config.cap = Duration::from_secs_f64(secs()?.max(0.1)),
                "--memory-secs" => config.memory_secs = secs()?.max(0.05),
                "--out" => config.out = PathBuf::from(value),
                "--only" => config.only = value.split(',').map(str::to_owned).collect(),
                _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
            }
        }
        Ok(config)
    }

    /// True if scenario `name` is to run.
    pub(crate) fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }

    /// `total` split over the rounds (at least one each).
    pub(crate) fn per_round(&self, total: usize) -> usize {
        (total / self.rounds).max(1)
    }
}
