//! A master for a Slurm job: one slave on each allocated node's `distio-serve`, then a small
//! parallel job over them (a sum of squares, split in one chunk per host).
//!
//! `deploy/slurm/distio.sbatch` starts `distio-serve` on every node and runs this on the
//! first one. The hosts come from `SLURM_JOB_NODELIST` (compressed forms such as
//! `node[01-04,07],gpu3` included), made into a [`distio_master::Cluster`] with
//! `slurm_nodelist` (expanded in Rust). The slave is this binary again, so the servers'
//! root must hold it (the batch script uses the binary's own directory):
//!
//! - `DISTIO_PORT`: the servers' port (default 1337);
//! - `DISTIO_SLAVE_SCRIPT`: the script to start on each host (default: this binary's name);
//! - `DISTIO_CREDENTIALS_FILE`: a file holding `user:password` for the servers' basic
//!   authentication (optional; keep it mode 0600).
//!
//! Outside Slurm: `SLURM_JOB_NODELIST=localhost cargo run -p distio-examples --example
//! slurm_master` with a `distio-serve --root target/debug/examples` running.

use distio_master::prelude::*;
use distio_master::{Cluster, Master, SpawnOptions};
use distio_slave::{SlaveProcess, TaskContext};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The numbers summed: 1..=N.
const N: u64 = 100_000;

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task(
            "sum squares",
            |(from, to): (u64, u64), _ctx: TaskContext| async move {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_default();
                Ok(((from..to).map(|n| u128::from(n * n)).sum::<u128>(), host))
            },
        )
        .serve()
        .await?;
    Ok(())
}

fn credentials() -> Result<Option<(String, String)>, Error> {
    let Some(path) = std::env::var_os("DISTIO_CREDENTIALS_FILE") else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|err| format!("cannot read DISTIO_CREDENTIALS_FILE: {err}"))?;
    let (user, password) = text
        .trim_end_matches(['\n', '\r'])
        .split_once(':')
        .ok_or("DISTIO_CREDENTIALS_FILE must hold `user:password`")?;
    Ok(Some((user.to_owned(), password.to_owned())))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    distio_examples::init_logging();
    if distio_slave::launched_as_slave() {
        return slave().await;
    }
    let list = std::env::var("SLURM_JOB_NODELIST")
        .map_err(|_| "SLURM_JOB_NODELIST is not set; run this inside a Slurm job")?;
    let port: u16 = match std::env::var("DISTIO_PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| "DISTIO_PORT is not a port number")?,
        Err(_) => 1337,
    };
    let script = match std::env::var("DISTIO_SLAVE_SCRIPT") {
        Ok(script) => script,
        Err(_) => std::env::current_exe()?
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or("this binary's file name is not UTF-8")?
            .to_owned(),
    };
    // The allocation's nodes as one cluster: the only line that differs from one host.
    let mut cluster = Cluster::builder().slurm_nodelist(&list, port);
    if let Some((user, password)) = credentials()? {
        cluster = cluster.credentials(user, password);
    }
    let cluster = cluster.build().await?;
    let hosts: Vec<String> = cluster.hosts().into_iter().map(|h| h.host).collect();
    println!(
        "slurm_master: {} host(s) from `{list}`: {}",
        hosts.len(),
        hosts.join(", ")
    );

    // One slave per node: least-loaded placement puts each on a host that has none yet.
    let master = Master::new();
    let slaves = master
        .spawn_many(hosts.len(), SpawnOptions::cluster(&cluster, &script))
        .await?;

    // One chunk of 1..=N per host, all in flight at once (a request is sent when first
    // polled, so each runs in a task of its own; the set aborts them if we return early).
    let chunk = N.div_ceil(slaves.len() as u64);
    let mut requests = tokio::task::JoinSet::new();
    for (i, slave) in slaves.iter().enumerate() {
        let from = 1 + i as u64 * chunk;
        let to = (from + chunk).min(N + 1);
        let slave = slave.clone();
        requests.spawn(async move {
            let reply = slave.exec("sum squares", &(from, to)).await?;
            let (part, host): (u128, String) = reply.value()?;
            Ok::<_, distio_master::MasterError>((slave.id(), part, host))
        });
    }
    let mut total: u128 = 0;
    while let Some(done) = requests.join_next().await {
        let (id, part, host) = done??;
        println!("slurm_master: slave #{id} on {host}: {part}");
        total += part;
    }
    let expected = u128::from(N) * u128::from(N + 1) * u128::from(2 * N + 1) / 6;
    master.close_all().await?;
    if total != expected {
        return Err(format!("sum of squares {total}, expected {expected}").into());
    }
    println!(
        "slurm_master: ok: sum of squares 1..={N} = {total} over {} host(s)",
        hosts.len()
    );
    Ok(())
}
