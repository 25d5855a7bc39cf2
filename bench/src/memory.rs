//! The memory probe: a fresh process that starts eight slaves (distio's, or the floor's),
//! keeps them busy for a while, then prints its own peak RSS and the largest slave's, in KiB.

use distio_bench::peak_rss_kib;
use distio_master::{Master, Output, SpawnOptions};
use serde_bytes::ByteBuf;
use std::time::{Duration, Instant};

use crate::floor::FloorChild;

const SLAVES: usize = 8;
const WINDOW: usize = 64;
const BURST: usize = 256;

pub(crate) fn probe(args: &[String]) -> Result<(), String> {
    let side = args.first().map(String::as_str).unwrap_or("distio");
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let load_for = Duration::from_secs_f64(secs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let slave_peak = runtime.block_on(async {
        match side {
            "floor" => floor_load(load_for).await,
            _ => distio_load(load_for).await,
        }
    })?;
    let master_peak = peak_rss_kib("self").ok_or("no /proc/self/status")?;
    println!("{master_peak} {slave_peak}");
    Ok(())
}

async fn distio_load(load_for: Duration) -> Result<u64, String> {
    let master = Master::new();
    let exe = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("bench-slave");
    let slaves = master
        .spawn_many(SLAVES, SpawnOptions::new(exe).output(Output::Inherit))
        .await
        .map_err(|e| e.to_string())?;
    let data = ByteBuf::from(vec![7u8; 16]);
    let payload = distio_proto::Payload::encode(&data).map_err(|e| e.to_string())?;
    let started = Instant::now();
    while started.elapsed() < load_for {
        let bursts = slaves.iter().map(|slave| {
            let payload = payload.clone();
            async move {
                let mut done = 0;
                while done < BURST {
                    let batch: Vec<_> = (0..WINDOW)
                        .map(|_| slave.exec_payload("echo", payload.clone()).into_future())
                        .collect();
                    for r in futures_util::future::join_all(batch).await {
                        r.map_err(|e| e.to_string())?;
                    }
                    done += WINDOW;
                }
                Ok::<(), String>(())
            }
        });
        for r in futures_util::future::join_all(bursts).await {
            r?;
        }
    }
    let peak = slaves
        .iter()
        .filter_map(|s| s.pid())
        .filter_map(|pid| peak_rss_kib(&pid.to_string()))
        .max()
        .unwrap_or(0);
    slaves.close().await.map_err(|e| e.to_string())?;
    Ok(peak)
}

async fn floor_load(load_for: Duration) -> Result<u64, String> {
    let exe = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("floor-echo");
    let mut children = (0..SLAVES)
        .map(|_| FloorChild::spawn(&exe))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    while started.elapsed() < load_for {
        let bursts = children
            .iter_mut()
            .map(|child| child.pipelined(BURST, WINDOW, &[7u8; 16]));
        for r in futures_util::future::join_all(bursts).await {
            r.map_err(|e| e.to_string())?;
        }
    }
    Ok(children
        .iter()
        .filter_map(|c| c.pid())
        .filter_map(|pid| peak_rss_kib(&pid.to_string()))
        .max()
        .unwrap_or(0))
}
