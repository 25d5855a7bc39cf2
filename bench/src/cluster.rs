//! The many-hosts scenarios: a workpool over three `distio-serve` processes against the
//! same over one (C1), and how long a stream stalls when its link drops and the session
//! resumes (C2).

use distio_master::{Cluster, Master, Output, Slave, SlaveArray, SpawnOptions};
use distio_patterns::Workpool;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::remote::ServerProcess;
use crate::report::{Outcome, Target};
use crate::scenarios::{Programs, bytes_payload, capped, echo};
use crate::stats::{quantile, rate};

type Result<T> = std::result::Result<T, String>;

/// Slaves per workpool in C1, whether on one host or spread over three.
const POOL_SLAVES: usize = 6;

fn script(programs: &Programs) -> Result<String> {
    programs
        .slave
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| "bench-slave has no file name".to_owned())
}

async fn pool_on(master: &Master, cluster: &Cluster, script: &str) -> Result<SlaveArray> {
    master
        .spawn_many(
            POOL_SLAVES,
            SpawnOptions::cluster(cluster, script).output(Output::Inherit),
        )
        .await
        .map_err(|e| e.to_string())
}

async fn cluster_of(ports: &[u16]) -> Result<Cluster> {
    Cluster::builder()
        .urls(ports.iter().map(|p| format!("ws://127.0.0.1:{p}")))
        .build()
        .await
        .map_err(|e| e.to_string())
}

/// Scenario C1: the same windowed workpool of `noop` tasks over six slaves spread over
/// three server processes, and over six slaves on one.
pub(crate) async fn cluster(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let servers = (0..4)
        .map(|_| ServerProcess::distio(programs))
        .collect::<Result<Vec<_>>>()?;
    let script = script(programs)?;
    let three = cluster_of(&[servers[0].port, servers[1].port, servers[2].port]).await?;
    let one = cluster_of(&[servers[3].port]).await?;
    let master = Master::new();
    let spread = pool_on(&master, &three, &script).await?;
    let single = pool_on(&master, &one, &script).await?;
    let hosts_used = three.hosts().iter().filter(|h| h.ours > 0).count();
    let window = config.workpool_window;
    let pool = |slaves: &SlaveArray| {
        Workpool::new(slaves)
            .and_then(|p| p.max_in_flight(window))
            .map_err(|e| e.to_string())
    };
    let (over_three, over_one) = (pool(&spread)?, pool(&single)?);
    let per = config.per_round(config.workpool_tasks);
    let items = vec![(); per];
    let run = |pool: &Workpool, what: &'static str| {
        let items = &items;
        let pool = pool.clone();
        async move {
            capped(config, what, async {
                let started = Instant::now();
                let replies = pool
                    .run_all("noop", items)
                    .await
                    .map_err(|e| e.to_string())?;
                if !replies.errors().is_empty() {
                    return Err(format!("{what}: task errors"));
                }
                Ok(started.elapsed())
            })
            .await
        }
    };
    let (mut t3, mut t1) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..config.rounds {
        t3 += run(&over_three, "workpool over 3 hosts").await?;
        t1 += run(&over_one, "workpool over 1 host").await?;
    }
    spread.close().await.map_err(|e| e.to_string())?;
    single.close().await.map_err(|e| e.to_string())?;
    let total = per * config.rounds;
    Ok(vec![
        Outcome::new(
            "C1. workpool, 6 slaves over 3 hosts vs 1 host (one machine)",
            "req/s",
            rate(total, t3),
            rate(total, t1),
            // Three servers share this machine's cores with the master: no gain to expect
            // here, only no loss from the spreading.
            Target::RatioAtLeast(0.7),
        )
        .note(&format!(
            "window {window}; {hosts_used} hosts used; 'floor' column = the same over 1 host"
        )),
    ])
}

/// A loopback TCP proxy whose connections can all be dropped at once.
struct DropProxy {
    addr: SocketAddr,
    links: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl DropProxy {
    async fn start(server: u16) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let links = Arc::new(Mutex::new(JoinSet::new()));
        let held = Arc::clone(&links);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", server)).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let mut links = held.lock().unwrap_or_else(|p| p.into_inner());
                links.spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Ok(DropProxy {
            addr,
            links,
            accept,
        })
    }

    /// Drops every connection through it (both sides see the link end).
    fn drop_links(&self) {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .abort_all();
    }
}

impl Drop for DropProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_links();
    }
}

/// Scenario C2: a slave answering small echoes through a proxy; every link through it is
/// dropped, and the time until the next request is answered (the master notices the drop,
/// redials, authenticates, resumes and replays) is measured.
pub(crate) async fn resume(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let server = ServerProcess::distio(programs)?;
    let proxy = DropProxy::start(server.port).await?;
    let master = Master::new();
    let slave: Slave = master
        .spawn(
            SpawnOptions::remote(format!("ws://{}", proxy.addr), script(programs)?)
                .output(Output::Inherit),
        )
        .await
        .map_err(|e| e.to_string())?;
    let payload = bytes_payload(16);
    for _ in 0..50 {
        echo(&slave, &payload).await?;
    }
    let drops = if config.smoke { 3 } else { 30 };
    let mut stalls = Vec::with_capacity(drops);
    let mut normal = Vec::with_capacity(drops * 20);
    for _ in 0..drops {
        // A request sent right after the drop cannot come back over the old link: its
        // answer arrives once the session has resumed (it is replayed if it was written to
        // the dead link).
        proxy.drop_links();
        let dropped = Instant::now();
        capped(
            config,
            "resume after a dropped link",
            echo(&slave, &payload),
        )
        .await?;
        stalls.push(dropped.elapsed());
        for _ in 0..20 {
            let started = Instant::now();
            echo(&slave, &payload).await?;
            normal.push(started.elapsed());
        }
    }
    slave.close().await.map_err(|e| e.to_string())?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(vec![
        Outcome::new(
            "C2. link dropped → stream answers again (resume), median",
            "ms",
            ms(quantile(&mut stalls, 0.5)),
            ms(quantile(&mut normal, 0.5)),
            Target::AbsoluteAtMost(1_000.0),
        )
        .note(&format!(
            "{drops} drops; loopback; reconnect + auth + resume + replay; 'floor' column = \
             an echo's round trip on the live link"
        )),
    ])
}
