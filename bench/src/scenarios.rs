//! The scenarios: each runs distio and the floor in alternating rounds.

use distio_master::{Master, Output, Slave, SlaveArray, SpawnOptions};
use distio_patterns::{Balance, Workpool};
use distio_proto::Payload;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_bytes::ByteBuf;
use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::floor::FloorChild;
use crate::report::{Outcome, Target};
use crate::stats::{quantile, rate};
use distio_bench::cpu_ns;

type Result<T> = std::result::Result<T, String>;

const MIB: usize = 1024 * 1024;

/// Where the programs are.
pub(crate) struct Programs {
    pub(crate) floor_echo: PathBuf,
    pub(crate) floor_relay: PathBuf,
    /// The distio slave (`bench-slave`): a small binary of its own, so its memory is a
    /// slave's, not the benchmark's.
    pub(crate) slave: PathBuf,
    pub(crate) bench: PathBuf,
}

fn slave_options(programs: &Programs) -> SpawnOptions {
    SpawnOptions::new(&programs.slave).output(Output::Inherit)
}

/// Runs `fut` under the per-round cap.
pub(crate) async fn capped<T>(
    config: &Config,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(config.cap, fut)
        .await
        .map_err(|_| format!("{what} exceeded the {:?} cap", config.cap))?
}

pub(crate) fn bytes_payload(len: usize) -> Payload {
    Payload::encode(&ByteBuf::from(vec![7u8; len])).unwrap_or_default()
}

pub(crate) async fn echo(slave: &Slave, payload: &Payload) -> Result<()> {
    let response = slave
        .exec_payload("echo", payload.clone())
        .await
        .map_err(|e| e.to_string())?;
    response.into_result().map(drop).map_err(|e| e.to_string())
}

async fn ready(master: &Master, programs: &Programs, count: usize) -> Result<SlaveArray> {
    let slaves = master
        .spawn_many(count, slave_options(programs))
        .await
        .map_err(|e| e.to_string())?;
    for slave in &slaves {
        slave.ready().await.map_err(|e| e.to_string())?;
    }
    Ok(slaves)
}

fn floors(programs: &Programs, count: usize) -> Result<Vec<FloorChild>> {
    (0..count)
        .map(|_| FloorChild::spawn(&programs.floor_echo).map_err(|e| e.to_string()))
        .collect()
}

/// Scenario 1: sequential round trips with a 16-byte payload.
pub(crate) async fn sequential(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let master = Master::new();
    let slave = ready(&master, programs, 1).await?.into_vec().remove(0);
    let mut floor = floors(programs, 1)?.remove(0);
    let payload = bytes_payload(16);
    let raw = [7u8; 16];
    for _ in 0..100 {
        echo(&slave, &payload).await?;
        floor.round_trip(&raw).await.map_err(|e| e.to_string())?;
    }
    let per = config.per_round(config.sequential);
    let (mut d, mut f) = (
        Vec::with_capacity(config.sequential),
        Vec::with_capacity(config.sequential),
    );
    for _ in 0..config.rounds {
        capped(config, "distio sequential", async {
            for _ in 0..per {
                let started = Instant::now();
                echo(&slave, &payload).await?;
                d.push(started.elapsed());
            }
            Ok(())
        })
        .await?;
        capped(config, "floor sequential", async {
            for _ in 0..per {
                f.push(floor.round_trip(&raw).await.map_err(|e| e.to_string())?);
            }
            Ok(())
        })
        .await?;
    }
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let outcomes = vec![
        Outcome::new(
            "1. sequential round trip, median",
            "µs",
            micros(quantile(&mut d, 0.5)),
            micros(quantile(&mut f, 0.5)),
            Target::RatioAtMost(1.25),
        ),
        Outcome::new(
            "1. sequential round trip, p99",
            "µs",
            micros(quantile(&mut d, 0.99)),
            micros(quantile(&mut f, 0.99)),
            Target::None,
        ),
    ];
    slave.close().await.map_err(|e| e.to_string())?;
    Ok(outcomes)
}

/// `total` distio requests to `slave` with at most `window` in flight.
pub(crate) async fn distio_pipelined(
    slave: &Slave,
    total: usize,
    window: usize,
    payload: &Payload,
) -> Result<Duration> {
    let started = Instant::now();
    let mut running = FuturesUnordered::new();
    let mut sent = 0;
    loop {
        while sent < total && running.len() < window {
            running.push(slave.exec_payload("echo", payload.clone()).into_future());
            sent += 1;
        }
        match running.next().await {
            Some(result) => {
                result
                    .map_err(|e| e.to_string())?
                    .into_result()
                    .map_err(|e| e.to_string())?;
            }
            None => return Ok(started.elapsed()),
        }
    }
}

/// Scenario 2: Pipelined requests to one slave; also the CPU each side spends per request.
pub(crate) async fn pipelined(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let master = Master::new();
    let slave = ready(&master, programs, 1).await?.into_vec().remove(0);
    let mut floor = floors(programs, 1)?.remove(0);
    let (payload, raw) = (bytes_payload(16), [7u8; 16]);
    let per = config.per_round(config.pipelined);
    let slave_pid = slave.pid().map(|p| p.to_string()).unwrap_or_default();
    let child_pid = floor.pid().map(|p| p.to_string()).unwrap_or_default();
    let (mut d, mut f) = (Duration::ZERO, Duration::ZERO);
    let (mut d_cpu, mut f_cpu) = ((0u64, 0u64), (0u64, 0u64));
    for _ in 0..config.rounds {
        let (m0, s0) = (cpu_ns("self"), cpu_ns(&slave_pid));
        d += capped(
            config,
            "distio pipelined",
            distio_pipelined(&slave, per, config.window, &payload),
        )
        .await?;
        d_cpu.0 += cpu_ns("self").saturating_sub(m0);
        d_cpu.1 += cpu_ns(&slave_pid).saturating_sub(s0);
        let (m0, c0) = (cpu_ns("self"), cpu_ns(&child_pid));
        f += capped(config, "floor pipelined", async {
            floor
                .pipelined(per, config.window, &raw)
                .await
                .map_err(|e| e.to_string())
        })
        .await?;
        f_cpu.0 += cpu_ns("self").saturating_sub(m0);
        f_cpu.1 += cpu_ns(&child_pid).saturating_sub(c0);
    }
    let total = per * config.rounds;
    let per_request = |ns: u64| ns as f64 / 1e3 / total as f64;
    slave.close().await.map_err(|e| e.to_string())?;
    Ok(vec![
        Outcome::new(
            "2. pipelined, 1 slave",
            "req/s",
            rate(total, d),
            rate(total, f),
            Target::RatioAtLeast(0.5),
        ),
        Outcome::new(
            "2. pipelined, master CPU per request",
            "µs",
            per_request(d_cpu.0),
            per_request(f_cpu.0),
            Target::None,
        ),
        Outcome::new(
            "2. pipelined, slave CPU per request",
            "µs",
            per_request(d_cpu.1),
            per_request(f_cpu.1),
            Target::None,
        ),
    ])
}

/// Scenario 3: One 16-byte request broadcast to eight slaves, again and again.
pub(crate) async fn broadcast(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let master = Master::new();
    let slaves = ready(&master, programs, 8).await?;
    let mut children = floors(programs, 8)?;
    let data = ByteBuf::from(vec![7u8; 16]);
    let raw = [7u8; 16];
    let per = config.per_round(config.broadcasts);
    let (mut d, mut f) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..config.rounds {
        d += capped(config, "distio broadcast", async {
            let started = Instant::now();
            for _ in 0..per {
                let replies = slaves
                    .exec("echo", &data)
                    .await
                    .map_err(|e| e.to_string())?;
                if !replies.errors().is_empty() {
                    return Err(format!("broadcast errors: {:?}", replies.errors()));
                }
            }
            Ok(started.elapsed())
        })
        .await?;
        f += capped(config, "floor broadcast", async {
            let started = Instant::now();
            for _ in 0..per {
                let mut ids = Vec::with_capacity(children.len());
                for child in children.iter_mut() {
                    ids.push(child.send(&raw).await.map_err(|e| e.to_string())?);
                }
                for (child, id) in children.iter_mut().zip(ids) {
                    child.recv(id).await.map_err(|e| e.to_string())?;
                }
            }
            Ok(started.elapsed())
        })
        .await?;
    }
    let total = per * config.rounds;
    slaves.close().await.map_err(|e| e.to_string())?;
    Ok(vec![Outcome::new(
        "3. broadcast to 8 slaves",
        "broadcasts/s",
        rate(total, d),
        rate(total, f),
        Target::None,
    )])
}

/// Scenario 4: A workpool of two slaves running trivial tasks: one in flight per slave, then a window.
pub(crate) async fn workpool(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let master = Master::new();
    let slaves = ready(&master, programs, 2).await?;
    let mut children = floors(programs, 2)?;
    let per = config.per_round(config.workpool_tasks);
    let items = vec![(); per];
    let single = Workpool::new(&slaves).map_err(|e| e.to_string())?;
    let first_free = Workpool::new(&slaves)
        .map_err(|e| e.to_string())?
        .balance(Balance::FirstFree);
    let windowed = Workpool::new(&slaves)
        .and_then(|p| p.max_in_flight(config.workpool_window))
        .map_err(|e| e.to_string())?;
    let (mut one, mut one_first_free, mut many) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut floor_one, mut floor_many) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..config.rounds {
        one += capped(config, "distio workpool", async {
            let started = Instant::now();
            let replies = single
                .run_all("noop", &items)
                .await
                .map_err(|e| e.to_string())?;
            if !replies.errors().is_empty() {
                return Err("workpool task errors".to_owned());
            }
            Ok(started.elapsed())
        })
        .await?;
        one_first_free += capped(config, "distio workpool, first free", async {
            let started = Instant::now();
            first_free
                .run_all("noop", &items)
                .await
                .map_err(|e| e.to_string())?;
            Ok(started.elapsed())
        })
        .await?;
        // The floor of one in flight each: both floor children at once, each answering one
        // request at a time (the same two concurrent loops a workpool of two runs).
        floor_one += capped(config, "floor workpool", async {
            let started = Instant::now();
            let (a, b) = children.split_at_mut(1);
            let half = per / 2;
            tokio::try_join!(
                a[0].pipelined(half, 1, &[]),
                b[0].pipelined(per - half, 1, &[]),
            )
            .map_err(|e| e.to_string())?;
            Ok(started.elapsed())
        })
        .await?;
        many += capped(config, "distio workpool, window", async {
            let started = Instant::now();
            windowed
                .run_all("noop", &items)
                .await
                .map_err(|e| e.to_string())?;
            Ok(started.elapsed())
        })
        .await?;
        floor_many += capped(config, "floor workpool, window", async {
            let started = Instant::now();
            let (a, b) = children.split_at_mut(1);
            let half = per / 2;
            tokio::try_join!(
                a[0].pipelined(half, config.workpool_window, &[]),
                b[0].pipelined(per - half, config.workpool_window, &[]),
            )
            .map_err(|e| e.to_string())?;
            Ok(started.elapsed())
        })
        .await?;
    }
    let total = per * config.rounds;
    slaves.close().await.map_err(|e| e.to_string())?;
    Ok(vec![
        Outcome::new(
            "4a. workpool, 2 slaves, 1 in flight each",
            "tasks/s",
            rate(total, one),
            rate(total, floor_one),
            Target::RatioAtLeast(0.9),
        )
        .note("floor = two floor loops, one in flight each, at once"),
        Outcome::new(
            "4a. the same with Balance::FirstFree",
            "tasks/s",
            rate(total, one_first_free),
            rate(total, floor_one),
            Target::None,
        )
        .note("counts not kept even"),
        Outcome::new(
            "4b. workpool, 2 slaves, window in flight each",
            "tasks/s",
            rate(total, many),
            rate(total, floor_many),
            Target::None,
        )
        .note(&format!("window {}", config.workpool_window)),
    ])
}

/// Scenario 5: Echo of 1 MiB payloads, one at a time.
pub(crate) async fn large(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let master = Master::new();
    let slave = ready(&master, programs, 1).await?.into_vec().remove(0);
    let mut floor = floors(programs, 1)?.remove(0);
    let payload = bytes_payload(MIB);
    let raw = vec![7u8; MIB];
    let per = config.per_round(config.mib_echoes);
    let (mut d, mut f) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..config.rounds {
        d += capped(config, "distio 1 MiB echo", async {
            let started = Instant::now();
            for _ in 0..per {
                echo(&slave, &payload).await?;
            }
            Ok(started.elapsed())
        })
        .await?;
        f += capped(config, "floor 1 MiB echo", async {
            let started = Instant::now();
            for _ in 0..per {
                floor.round_trip(&raw).await.map_err(|e| e.to_string())?;
            }
            Ok(started.elapsed())
        })
        .await?;
    }
    let mb = |elapsed: Duration| {
        (per * config.rounds * MIB) as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
    };
    slave.close().await.map_err(|e| e.to_string())?;
    Ok(vec![Outcome::new(
        "5. 1 MiB echo",
        "MB/s",
        mb(d),
        mb(f),
        Target::RatioAtLeast(0.75),
    )])
}

/// Scenario 6: Start eight slaves and wait until each has answered once.
pub(crate) async fn spawn(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let (mut d, mut f) = (Vec::new(), Vec::new());
    for _ in 0..config.spawns {
        let master = Master::new();
        d.push(
            capped(config, "distio spawn", async {
                let started = Instant::now();
                let slaves = master
                    .spawn_many(8, slave_options(programs))
                    .await
                    .map_err(|e| e.to_string())?;
                let replies = slaves.exec("noop", &()).await.map_err(|e| e.to_string())?;
                if !replies.errors().is_empty() {
                    return Err("spawned slaves failed".to_owned());
                }
                let elapsed = started.elapsed();
                slaves.close().await.map_err(|e| e.to_string())?;
                Ok(elapsed)
            })
            .await?,
        );
        f.push(
            capped(config, "floor spawn", async {
                let started = Instant::now();
                let mut children = floors(programs, 8)?;
                for child in children.iter_mut() {
                    child.round_trip(&[]).await.map_err(|e| e.to_string())?;
                }
                Ok(started.elapsed())
            })
            .await?,
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(vec![Outcome::new(
        "6. spawn 8 slaves until each answered",
        "ms",
        ms(quantile(&mut d, 0.5)),
        ms(quantile(&mut f, 0.5)),
        Target::AbsoluteAtMost(30.0),
    )])
}

/// Scenario 7: Peak memory, measured in a fresh process for each side.
pub(crate) async fn memory(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let probe = |side: &str| {
        let out = std::process::Command::new(&programs.bench)
            .args(["--memory-probe", side, &config.memory_secs.to_string()])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut numbers = text
            .split_whitespace()
            .filter_map(|w| w.parse::<f64>().ok());
        match (out.status.success(), numbers.next(), numbers.next()) {
            (true, Some(master), Some(slave)) => Ok((master / 1024.0, slave / 1024.0)),
            _ => Err(format!(
                "memory probe ({side}) failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    };
    let (dm, ds) = probe("distio")?;
    let (fm, fs) = probe("floor")?;
    Ok(vec![
        Outcome::new(
            "7a. peak RSS, master with 8 slaves under load",
            "MiB",
            dm,
            fm,
            Target::AbsoluteAtMost(16.0),
        ),
        Outcome::new(
            "7b. peak RSS, one slave under load",
            "MiB",
            ds,
            fs,
            Target::AbsoluteAtMost(4.0),
        ),
    ])
}
