//! One master, three `distio-serve` hosts: 24 slaves spread over them by what each server
//! reports (capacities 8, 12 and 16 here), a workpool over all of them, then one host stopped
//! in the middle of a second job — the job completes on the other two, and new slaves go
//! only where there is a server.
//!
//! Run with `cargo run -p distio-examples --example cluster`. It starts the three servers in
//! this process on free loopback ports, with the directory of this example's binary as
//! their root, and names the binary itself as the script (one binary is master, servers and
//! slaves). On real machines the only change is the host list: URLs, a DNS name
//! (`.dns("distio-serve.ns.svc.cluster.local", 1337)`) or a Slurm node list
//! (`.slurm_nodelist(&std::env::var("SLURM_JOB_NODELIST")?, 1337)`); see docs/cluster.md.

use distio_master::{Cluster, LinkSettings, Location, Master, Output, SpawnOptions};
use distio_patterns::Workpool;
use distio_slave::{SlaveProcess, TaskContext};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task("work", |n: u64, _ctx: TaskContext| async move {
            // Something that takes a moment, so every slave gets a share.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(n * n)
        })
        .serve()
        .await?;
    Ok(())
}

/// A server in this process with `capacity` places, serving `root`.
async fn server(
    root: &Path,
    capacity: usize,
) -> Result<(String, distio_serve::ShutdownHandle), Error> {
    let server = distio_serve::Server::builder()
        .port(0)
        .root(root)
        .max_concurrent_slaves(capacity)
        // Its own slaves, run as the user running it (root included), as local ones would be.
        .containment(distio_serve::Containment {
            allow_root_slaves: true,
            ..distio_serve::Containment::default()
        })
        .build()
        .await?;
    let url = format!("ws://{}", server.local_addr());
    let stop = server.shutdown_handle();
    tokio::spawn(server.run());
    Ok((url, stop))
}

fn spread(slaves: &distio_master::SlaveArray) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for slave in slaves {
        if let Location::Remote { host, .. } = slave.location() {
            *counts.entry(host.clone()).or_default() += 1;
        }
    }
    counts
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    distio_examples::init_logging();
    if distio_slave::launched_as_slave() {
        return slave().await;
    }
    let (script, root) = distio_examples::own_script()?;

    let mut urls = Vec::new();
    let mut stops = Vec::new();
    for capacity in [8, 12, 16] {
        let (url, stop) = server(&root, capacity).await?;
        println!("distio-serve at {url}, {capacity} places");
        urls.push(url);
        stops.push(stop);
    }

    let cluster = Cluster::builder()
        .urls(&urls)
        // Find a lost host within a second or two (the defaults are 2 s × 4).
        .link(LinkSettings {
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_misses: 3,
            ..LinkSettings::default()
        })
        .build()
        .await?;
    let master = Master::new();
    let options = || SpawnOptions::cluster(&cluster, &script).output(Output::Null);
    let slaves = master.spawn_many(24, options()).await?;
    println!("24 slaves placed: {:?}", spread(&slaves));

    let pool = Workpool::new(&slaves)?.retry_on_exit(true);
    let items: Vec<u64> = (1..=200).collect();
    let squares = pool.run_all("work", &items).await?;
    println!(
        "workpool over 3 hosts: sum of squares 1..=200 = {}",
        squares.values::<u64>()?.iter().sum::<u64>()
    );

    // The second host stops in the middle of a job: its slaves end, naming it, and the
    // workpool sends their tasks to the slaves left.
    let job = pool.run_all("work", &items);
    let stop_one = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stops[1].shutdown();
    };
    let (again, ()) = tokio::join!(job, stop_one);
    let again = again?;
    println!(
        "with {} stopped mid-job: {} answers, {} errors",
        urls[1],
        again.len(),
        again.errors().len()
    );

    let more = master.spawn_many(6, options()).await?;
    println!("6 more slaves placed: {:?}", spread(&more));
    for host in cluster.hosts() {
        println!(
            "  {}: {:?}, {} of ours, {}/{} busy",
            host.host, host.health, host.ours, host.busy, host.capacity
        );
    }

    master.close_all().await?;
    for stop in stops {
        stop.shutdown();
    }
    Ok(())
}
