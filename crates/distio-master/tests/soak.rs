//! The soak: mixed load, timeouts, kills and respawns for a long while, watching that the
//! master's memory, descriptors, threads and child processes do not grow.
//!
//! Ignored by default (it runs for ten minutes). Run it with `cargo xtask soak`, or
//! `DISTIO_SOAK_SECS=600 cargo test --release -p distio-master --test soak -- --ignored
//! --nocapture`.

mod common;

use common::{slave_options, spawn_ready, within};
use distio_master::prelude::*;
use distio_master::{Master, Signal, Slave};
use futures_util::future::join_all;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

const SLAVES: usize = 4;

/// What the master process holds at one moment.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    children: usize,
}

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("field")
}

fn children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) state ppid ...": the fields after the last ')'.
            let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
            let state = fields.next();
            let ppid = fields.next();
            ppid == Some(me.as_str()) && state != Some("Z")
        })
        .count()
}

fn sample(started: Instant) -> Sample {
    Sample {
        at: started.elapsed(),
        rss_kib: status_field("VmRSS:"),
        fds: std::fs::read_dir("/proc/self/fd").expect("fds").count(),
        threads: status_field("Threads:"),
        children: children(),
    }
}

/// One round of mixed work on `slaves`; replaces the ones it ends.
async fn round(master: &Master, slaves: &mut [Slave], n: u64) {
    // Pipelined quick requests to every slave.
    let quick = join_all(slaves.iter().flat_map(|slave| {
        (0..50u64).map(move |i| {
            slave
                .exec("square", &i)
                .timeout(Duration::from_secs(20))
                .into_future()
        })
    }))
    .await;
    assert!(
        quick
            .iter()
            .all(|r| matches!(r, Ok(r) if r.error().is_none()))
    );
    // Requests that time out on the master's clock, and one dropped in flight.
    let late = join_all(slaves.iter().map(|slave| {
        slave
            .exec("sleep", &2_000u64)
            .timeout(Duration::from_millis(50))
            .into_future()
    }))
    .await;
    assert!(
        late.iter()
            .all(|r| matches!(r, Ok(r) if r.error().is_some()))
    );
    let dropped = slaves[0].exec("sleep", &1_000u64).into_future();
    assert!(
        tokio::time::timeout(Duration::from_millis(5), dropped)
            .await
            .is_err()
    );
    // Events, some read and some left to the bounded subscription.
    let mut events = slaves[1].subscribe_all();
    within(slaves[1].exec("emit", &("tick".to_owned(), 100u32)))
        .await
        .expect("emit");
    let _ = events.try_recv();
    within(slaves[2].ping()).await.expect("ping");
    // Ends and respawns: a kill, a close, a shutdown.
    let victim = (n as usize) % SLAVES;
    let ended = &slaves[victim];
    match n % 3 {
        0 => {
            ended.kill(Signal::KILL).await.expect("kill");
            within(ended.exited()).await;
        }
        1 => {
            within(ended.close()).await.unwrap();
        }
        _ => {
            within(ended.shutdown()).await.unwrap();
        }
    }
    slaves[victim] = spawn_ready(master, slave_options()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs for ten minutes; `cargo xtask soak`"]
async fn soak() {
    let secs: u64 = std::env::var("DISTIO_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let master = Master::new();
    let mut slaves = Vec::new();
    for _ in 0..SLAVES {
        slaves.push(spawn_ready(&master, slave_options()).await);
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        round(&master, &mut slaves, n).await;
        n += 1;
        if started.elapsed() >= next_sample {
            let s = sample(started);
            println!(
                "soak t={:>4}s rounds={n:>6} rss={:>7} KiB fds={:>3} threads={:>3} children={}",
                s.at.as_secs(),
                s.rss_kib,
                s.fds,
                s.threads,
                s.children
            );
            samples.push(s);
            next_sample += Duration::from_secs((secs / 20).max(1));
        }
    }
    for slave in &slaves {
        within(slave.close()).await.unwrap();
    }
    // Compare the end with the state after warm-up (the first quarter of the samples).
    let warm = &samples[samples.len() / 4..samples.len() / 2 + 1];
    let last = &samples[samples.len() * 3 / 4..];
    let max = |f: fn(&Sample) -> u64, of: &[Sample]| of.iter().map(f).max().unwrap_or(0);
    let warm_rss = max(|s| s.rss_kib, warm);
    let last_rss = max(|s| s.rss_kib, last);
    println!(
        "soak: {n} rounds in {:?}; RSS after warm-up {warm_rss} KiB, at the end {last_rss} KiB",
        started.elapsed()
    );
    assert!(
        last_rss <= warm_rss + warm_rss / 5 + 8 * 1024,
        "RSS grew from {warm_rss} KiB to {last_rss} KiB"
    );
    assert!(
        max(|s| s.fds as u64, last) <= max(|s| s.fds as u64, warm) + 2,
        "descriptors grew"
    );
    assert!(
        max(|s| s.threads, last) <= max(|s| s.threads, warm) + 2,
        "threads grew"
    );
    assert!(
        max(|s| s.children as u64, last) <= max(|s| s.children as u64, warm),
        "child processes grew"
    );
}
