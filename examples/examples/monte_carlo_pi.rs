//! Monte Carlo estimate of π with a workpool of four slaves and a progress bar; when
//! standard error is not a terminal, plain progress lines every 10 % instead.
//!
//! Run with `cargo run --release -p distio-examples --example monte_carlo_pi`.

use distio_master::{Master, Output, SpawnOptions};
use distio_patterns::{Progress, Workpool};
use distio_slave::{SlaveProcess, TaskContext};
use indicatif::{ProgressBar, ProgressStyle};

type Error = Box<dyn std::error::Error + Send + Sync>;

const SLAVES: usize = 4;
const TASKS: usize = 200;
const SAMPLES_PER_TASK: u64 = 200_000;

/// xorshift64*: small, fast, good enough to throw darts with.
fn next(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

/// Throws `samples` darts at the unit square; returns how many land in the quarter circle.
fn sample((samples, seed): (u64, u64)) -> u64 {
    let mut state = seed | 1;
    (0..samples)
        .filter(|_| {
            let (x, y) = (next(&mut state), next(&mut state));
            x * x + y * y <= 1.0
        })
        .count() as u64
}

/// The multiple of 10 % that `p` reached with its last completed task, if it reached one.
fn crossed_tenth(p: Progress) -> Option<usize> {
    let total = p.total.filter(|&t| t > 0)?;
    let tenths = |done: usize| done * 10 / total;
    (p.completed > 0 && tenths(p.completed) > tenths(p.completed - 1))
        .then(|| tenths(p.completed) * 10)
}

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task("sample", |job: (u64, u64), _ctx: TaskContext| async move {
            Ok(sample(job))
        })
        .serve()
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    distio_examples::init_logging();
    if distio_slave::launched_as_slave() {
        return slave().await;
    }
    let master = Master::new();
    let slaves = master
        .spawn_many(SLAVES, SpawnOptions::current_exe()?.output(Output::Inherit))
        .await?;

    // indicatif draws only on a terminal; elsewhere (a pipe, a log file, CI) print lines.
    let bar = ProgressBar::new(TASKS as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} tasks, {msg}",
    )?);
    let progress = bar.clone();
    let on_terminal = !bar.is_hidden();
    let pool = Workpool::new(&slaves)?.on_progress(move |p| {
        if on_terminal {
            progress.set_position(p.completed as u64);
            progress.set_message(format!("{} errors", p.errors));
        } else if let Some(percent) = crossed_tenth(p) {
            eprintln!(
                "{percent:3} % ({}/{TASKS} tasks, {} errors)",
                p.completed, p.errors
            );
        }
    });

    let jobs: Vec<(u64, u64)> = (0..TASKS as u64)
        .map(|seed| (SAMPLES_PER_TASK, 0x9E37_79B9 ^ (seed << 17)))
        .collect();
    let replies = pool.run_all("sample", &jobs).await?;
    bar.finish();

    let inside: u64 = replies.sum()?;
    let total = SAMPLES_PER_TASK * replies.values::<u64>()?.len() as u64;
    let estimate = 4.0 * inside as f64 / total as f64;
    println!(
        "π ≈ {estimate:.6} from {total} samples (error {:.6})",
        (estimate - std::f64::consts::PI).abs()
    );
    for (id, sent) in pool.sent_counts() {
        println!("slave #{id} ran {sent} tasks");
    }
    slaves.close().await?;
    Ok(())
}
