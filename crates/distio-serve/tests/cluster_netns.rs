//! A master spreading its slaves over three `distio-serve` hosts in three network namespaces
//! (`common::netns`): placement by capacity, a host killed with SIGKILL in the middle of a
//! workpool, a host whose link is cut while requests are pending on it and then restored, a
//! spawn racing a cut, and a host restarted after SIGKILL. The master is this test process,
//! in the root namespace, reaching the hosts over the lab's bridge; the slaves are real
//! processes.
//!
//! Skips (passes, saying so on stderr) unless run as root where `ip netns` works.

mod common;

use common::netns::{LabServe, NetLab};
use common::placement::{assert_skipped, host_of, per_host};
use common::within;
use distio_master::prelude::*;
use distio_master::{
    Cluster, ClusterBuilder, HostHealth, LinkSettings, Master, Output, RoundRobin, Slave,
    SlaveArray, SpawnOptions,
};
use distio_patterns::Workpool;
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

/// How many hosts each test's lab has.
const HOSTS: usize = 3;
/// A lost host is found within interval × misses (1.2 s).
const HEARTBEAT: Duration = Duration::from_millis(300);
const MISSES: u32 = 4;
/// How long a pending request on a cut host may take to fail: far more than the
/// heartbeat's 1.2 s (a loaded machine), far less than the request's own timeout.
const CUT_FOUND_BOUND: Duration = Duration::from_secs(20);
/// The pending request's own timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a host back on the network (or restarted) has to be probed back up.
const BACK_UP_BOUND: Duration = Duration::from_secs(30);

/// Quick detection, no resuming (not built yet): a dropped link fails its host at once.
fn quick_link() -> LinkSettings {
    LinkSettings {
        heartbeat_interval: HEARTBEAT,
        heartbeat_misses: MISSES,
        resume_window: Duration::ZERO,
    }
}

/// The hosts at `urls`, quick link settings, down hosts probed every 100 ms to 1 s.
fn cluster_of(urls: &[String]) -> ClusterBuilder {
    Cluster::builder()
        .urls(urls)
        .link(quick_link())
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
}

/// A lab of [`HOSTS`] namespaces with a `distio-serve` in each, started with
/// `--max-concurrent-slaves caps[i]`; `None` when the lab is skipped. The servers are
/// SIGKILLed before the lab is removed (both on drop, also when the test fails).
struct Hosts {
    servers: Vec<LabServe>,
    lab: NetLab,
}

impl Hosts {
    fn start(caps: [usize; HOSTS]) -> Option<Hosts> {
        let lab = NetLab::new(HOSTS)?;
        let servers = caps
            .iter()
            .enumerate()
            .map(|(i, cap)| lab.start_serve(i, 0, &["--max-concurrent-slaves", &cap.to_string()]))
            .collect();
        Some(Hosts { servers, lab })
    }

    fn urls(&self) -> Vec<String> {
        self.servers.iter().map(LabServe::url).collect()
    }

    fn url(&self, i: usize) -> String {
        self.servers[i].url()
    }

    /// Host `i` dies: its server and slaves are SIGKILLed (and reaped).
    fn kill9(&mut self, i: usize) {
        tokio::task::block_in_place(|| self.servers[i].kill9());
    }

    /// Starts host `i`'s server again on the port it had.
    async fn restart(&mut self, i: usize, cap: usize) {
        let port = self.servers[i].addr.port();
        let cap = cap.to_string();
        let server = tokio::task::block_in_place(|| {
            self.lab
                .start_serve(i, port, &["--max-concurrent-slaves", &cap])
        });
        assert_eq!(server.addr, self.servers[i].addr, "the same address again");
        self.servers[i] = server;
    }
}

/// `n` test slaves placed by `cluster`.
async fn spawn_on(master: &Master, cluster: &Cluster, n: usize) -> SlaveArray {
    within(master.spawn_many(
        n,
        SpawnOptions::cluster(cluster, "slave.sh").output(Output::Null),
    ))
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{n} slaves over the cluster: {e}; hosts: {:?}",
            cluster.hosts()
        )
    })
}

/// Waits (bounded) until host `i` is probed back up.
async fn wait_up(cluster: &Cluster, i: usize) {
    let deadline = Instant::now() + BACK_UP_BOUND;
    while cluster.hosts()[i].health != HostHealth::Up {
        assert!(
            Instant::now() < deadline,
            "host {i} not back up within {BACK_UP_BOUND:?}: {:?}",
            cluster.hosts()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until host `i` shows as down, with no spawn to look at it: the loss of
/// its session marks it down and starts its probe by itself.
async fn wait_down(cluster: &Cluster, i: usize) {
    let deadline = Instant::now() + BACK_UP_BOUND;
    while !matches!(cluster.hosts()[i].health, HostHealth::Down { .. }) {
        assert!(
            Instant::now() < deadline,
            "host {i} not shown down within {BACK_UP_BOUND:?} of losing its session: {:?}",
            cluster.hosts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Why a request to a lost slave failed, as the user reads it.
async fn failure_of(slave: &Slave) -> String {
    match within(slave.exec("square", &2u64)).await {
        Ok(response) => response
            .error()
            .unwrap_or_else(|| panic!("{slave} answered from a lost host"))
            .message
            .clone(),
        Err(err) => err.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_slaves_fill_three_namespaced_hosts_by_capacity_and_a_broadcast_reaches_all() {
    let Some(hosts) = Hosts::start([4, 10, 16]) else {
        return;
    };
    let cluster = cluster_of(&hosts.urls()).build().await.unwrap();
    let master = Master::new();
    let slaves = spawn_on(&master, &cluster, 30).await;

    let expected: BTreeMap<String, usize> =
        (0..HOSTS).map(|i| hosts.url(i)).zip([4, 10, 16]).collect();
    assert_eq!(per_host(&slaves), expected);

    let answers = within(master.tell(&slaves).to("square", &3u64))
        .await
        .unwrap();
    assert_eq!(answers.values::<u64>().unwrap(), vec![9; 30]);

    let views = cluster.hosts();
    assert!(
        views.iter().all(|v| v.health == HostHealth::Up),
        "{views:?}"
    );
    assert_eq!(
        views.iter().map(|v| v.capacity).collect::<Vec<_>>(),
        [4, 10, 16]
    );
    assert_eq!(views.iter().map(|v| v.ours).sum::<u32>(), 30);
    within(master.close_all()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_host_killed_mid_workpool_ends_its_slaves_naming_it_and_the_job_completes() {
    let Some(mut hosts) = Hosts::start([8, 8, 8]) else {
        return;
    };
    let cluster = cluster_of(&hosts.urls()).build().await.unwrap();
    let master = Master::new();
    let slaves = spawn_on(&master, &cluster, 6).await;
    assert_eq!(per_host(&slaves).len(), HOSTS, "{:?}", per_host(&slaves));
    let doomed = hosts.url(1);
    let pool = Workpool::new(&slaves).unwrap().retry_on_exit(true);

    // 60 tasks of 200 ms; host 1 is SIGKILLed once the job runs.
    let items = vec![200u64; 60];
    let job = pool.run_all("sleep", &items);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        hosts.kill9(1);
    };
    let (replies, ()) = tokio::join!(within(job), kill);
    let replies = replies.expect("the job completes over the two hosts left");
    assert!(replies.errors().is_empty(), "{:?}", replies.errors());
    assert_eq!(replies.values::<u64>().unwrap(), items);

    let lost: Vec<&Slave> = slaves.iter().filter(|s| host_of(s) == doomed).collect();
    assert_eq!(lost.len(), 2);
    for slave in lost {
        within(slave.exited()).await;
        let why = failure_of(slave).await;
        assert!(why.contains(&doomed), "{why}");
    }

    let more = spawn_on(&master, &cluster, 4).await;
    assert_skipped(&cluster, &more, &doomed, 1);
    within(master.close_all()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_fails_pending_requests_naming_the_host_and_a_restored_one_takes_slaves_again() {
    let Some(hosts) = Hosts::start([8, 8, 8]) else {
        return;
    };
    let cluster = cluster_of(&hosts.urls())
        .placement(RoundRobin::default())
        .build()
        .await
        .unwrap();
    let master = Master::new();
    let slaves = spawn_on(&master, &cluster, 6).await;
    let cut = hosts.url(1);
    let on_cut: Vec<&Slave> = slaves.iter().filter(|s| host_of(s) == cut).collect();
    assert_eq!(on_cut.len(), 2, "{:?}", per_host(&slaves));

    // Long requests pending on host 1's slaves, then its link goes down.
    let pending: Vec<_> = on_cut
        .iter()
        .map(|s| {
            tokio::spawn(
                s.exec("sleep", &120_000u64)
                    .timeout(REQUEST_TIMEOUT)
                    .into_future(),
            )
        })
        .collect();
    // Sent (and the slaves busy) before the cut.
    tokio::time::sleep(Duration::from_millis(300)).await;
    hosts.lab.cut(1);
    let cut_at = Instant::now();
    for request in pending {
        let outcome = tokio::time::timeout(CUT_FOUND_BOUND, request)
            .await
            .unwrap_or_else(|_| {
                panic!("a request pending on the cut host did not fail within {CUT_FOUND_BOUND:?}")
            })
            .expect("the request task");
        let why = match outcome {
            Ok(response) => response
                .error()
                .expect("no answer from a cut host")
                .message
                .clone(),
            Err(err) => err.to_string(),
        };
        assert!(why.contains(&cut), "{why}");
    }
    eprintln!(
        "pending requests on the cut host failed {:?} after the cut",
        cut_at.elapsed()
    );
    for slave in &on_cut {
        within(slave.exited()).await;
        assert!(slave.has_exited());
    }

    // Shown down without a spawn; new spawns go to the two hosts left.
    wait_down(&cluster, 1).await;
    let during = spawn_on(&master, &cluster, 4).await;
    assert_skipped(&cluster, &during, &cut, 1);
    let answers = within(master.tell(&during).to("square", &5u64))
        .await
        .unwrap();
    assert_eq!(answers.values::<u64>().unwrap(), vec![25; 4]);

    // Back on the network: the probe finds it, and round robin gives it slaves again.
    hosts.lab.restore(1);
    let restored_at = Instant::now();
    wait_up(&cluster, 1).await;
    eprintln!(
        "the restored host was probed up {:?} after the restore",
        restored_at.elapsed()
    );
    let after = spawn_on(&master, &cluster, 3).await;
    let on_restored: Vec<&Slave> = after.iter().filter(|s| host_of(s) == cut).collect();
    assert!(!on_restored.is_empty(), "{:?}", per_host(&after));
    for slave in on_restored {
        let n: u64 = within(slave.exec("square", &7u64))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(n, 49);
    }

    // Cut again, and spawn at once, before the heartbeat has noticed: the spawn sent to the
    // cut host fails with it when it is found dead, and goes to the next host.
    hosts.lab.cut(1);
    let racing = spawn_on(&master, &cluster, 3).await;
    assert_skipped(&cluster, &racing, &cut, 1);
    within(master.close_all()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_host_restarted_after_sigkill_is_probed_back_and_used_again() {
    let Some(mut hosts) = Hosts::start([8, 8, 8]) else {
        return;
    };
    let cluster = cluster_of(&hosts.urls())
        .placement(RoundRobin::default())
        .build()
        .await
        .unwrap();
    let master = Master::new();
    let first = spawn_on(&master, &cluster, 3).await;
    assert_eq!(per_host(&first).len(), HOSTS, "{:?}", per_host(&first));
    let killed = hosts.url(1);

    hosts.kill9(1);
    let lost = first.iter().find(|s| host_of(s) == killed).unwrap();
    within(lost.exited()).await;
    let why = failure_of(lost).await;
    assert!(why.contains(&killed), "{why}");
    wait_down(&cluster, 1).await;
    let during = spawn_on(&master, &cluster, 3).await;
    assert_skipped(&cluster, &during, &killed, 1);

    hosts.restart(1, 8).await;
    wait_up(&cluster, 1).await;
    let after = spawn_on(&master, &cluster, 3).await;
    let on_restarted: Vec<&Slave> = after.iter().filter(|s| host_of(s) == killed).collect();
    assert!(!on_restarted.is_empty(), "{:?}", per_host(&after));
    for slave in on_restarted {
        let n: u64 = within(slave.exec("square", &6u64))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(n, 36);
    }
    within(master.close_all()).await.unwrap();
}
