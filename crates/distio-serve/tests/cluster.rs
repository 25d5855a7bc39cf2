//! A master spreading its slaves over several `distio-serve` hosts on loopback
//! (`distio_master::Cluster`): placement by capacity, falling back when a host refuses, a
//! host killed in the middle of a job, and a host that comes back.

mod common;

use common::fleet::ProcessFleet;
use common::placement::{assert_skipped, host_of, per_host};
use common::{TestServer, start, within};
use distio_master::prelude::*;
use distio_master::{
    Cluster, HostHealth, LinkSettings, Master, MasterError, Output, RoundRobin, SpawnOptions,
};
use distio_patterns::Workpool;
use std::collections::BTreeMap;
use std::time::Duration;

/// Quick detection and probing, for tests; resuming on (a killed server is given up at
/// once all the same: nothing listens on its port).
fn quick_link() -> LinkSettings {
    LinkSettings {
        heartbeat_interval: Duration::from_millis(500),
        heartbeat_misses: 6,
        ..LinkSettings::default()
    }
}

async fn cluster_of(urls: &[String]) -> distio_master::ClusterBuilder {
    Cluster::builder()
        .urls(urls)
        .link(quick_link())
        .backoff(Duration::from_millis(100), Duration::from_millis(500))
}

fn url(addr: std::net::SocketAddr) -> String {
    format!("ws://{addr}")
}

/// A server with `capacity` places and no queue, reporting its status rarely (so the
/// placement works from the welcome and its own count).
async fn server_with(capacity: usize) -> TestServer {
    start(|b| {
        b.max_concurrent_slaves(capacity)
            .heartbeat(Duration::from_secs(30), 5)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_slaves_fill_three_hosts_by_their_capacity() {
    let servers = [
        server_with(4).await,
        server_with(10).await,
        server_with(16).await,
    ];
    let urls: Vec<String> = servers.iter().map(|s| url(s.addr)).collect();
    let cluster = cluster_of(&urls).await.build().await.unwrap();
    let master = Master::new();
    let slaves = within(master.spawn_many(
        30,
        SpawnOptions::cluster(&cluster, "slave.sh").output(Output::Null),
    ))
    .await
    .expect("30 slaves over 3 hosts");
    let counts = per_host(&slaves);
    let expected: BTreeMap<String, usize> = servers
        .iter()
        .zip([4, 10, 16])
        .map(|(s, n)| (url(s.addr), n))
        .collect();
    assert_eq!(counts, expected);

    // One array: a broadcast reaches every slave, whichever host it is on.
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
    for server in servers {
        server.stop.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_refuses_sends_the_slave_to_the_next() {
    // Host A has one place and no queue; another master takes it first.
    let full = start(|b| b.max_concurrent_slaves(1).queue_limit(0)).await;
    let roomy = server_with(4).await;
    let other = Master::new();
    let squatter =
        within(other.spawn(SpawnOptions::remote(url(full.addr), "slave.sh").output(Output::Null)))
            .await
            .unwrap();

    // Round robin asks A first, whatever its load; A refuses (full), B takes it.
    let cluster = cluster_of(&[url(full.addr), url(roomy.addr)])
        .await
        .placement(RoundRobin::default())
        .build()
        .await
        .unwrap();
    let master = Master::new();
    let slave =
        within(master.spawn(SpawnOptions::cluster(&cluster, "slave.sh").output(Output::Null)))
            .await
            .unwrap();
    assert_eq!(host_of(&slave), url(roomy.addr));
    // Refused for lack of room is not down.
    assert_eq!(cluster.hosts()[0].health, HostHealth::Up);

    within(master.close_all()).await.unwrap();
    within(squatter.kill(distio_master::Signal::KILL))
        .await
        .unwrap();
    full.stop.shutdown();
    roomy.stop.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_host_left_is_one_error_naming_each_host() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let cluster = cluster_of(&[url(addr)]).await.build().await.unwrap();
    let master = Master::new();
    let err = within(master.spawn(SpawnOptions::cluster(&cluster, "slave.sh")))
        .await
        .unwrap_err();
    let MasterError::NoHostAvailable { refusals, .. } = &err else {
        panic!("unexpected error: {err}");
    };
    assert_eq!(refusals.len(), 1);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(matches!(cluster.hosts()[0].health, HostHealth::Down { .. }));
    // The next spawn does not wait on it: it is down and skipped at once.
    let again = within(master.spawn(SpawnOptions::cluster(&cluster, "slave.sh"))).await;
    assert!(matches!(again, Err(MasterError::NoHostAvailable { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_in_the_middle_of_a_workpool_fails_fast_and_the_job_completes() {
    let mut fleet = ProcessFleet::start(&[8, 8, 8]);
    let cluster = cluster_of(&fleet.urls()).await.build().await.unwrap();
    let master = Master::new();
    let slaves = within(master.spawn_many(
        6,
        SpawnOptions::cluster(&cluster, "slave.sh").output(Output::Null),
    ))
    .await
    .unwrap();
    assert_eq!(per_host(&slaves).len(), 3, "spread over the three hosts");
    let doomed = url(fleet.addr(1));
    let pool = Workpool::new(&slaves).unwrap().retry_on_exit(true);

    // 60 tasks of 200 ms; the second host is killed (SIGKILL) once the job runs.
    let items = vec![200u64; 60];
    let job = pool.run_all("sleep", &items);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        fleet.kill9(1);
    };
    let (replies, ()) = tokio::join!(within(job), kill);
    let replies = replies.expect("the job completes over the two hosts left");
    assert!(replies.errors().is_empty(), "{:?}", replies.errors());
    assert_eq!(replies.values::<u64>().unwrap(), items);

    // The lost host's slaves were ended with the host named (not left to a timeout).
    for slave in slaves.iter().filter(|s| host_of(s) == doomed) {
        within(slave.exited()).await;
        let why = match within(slave.exec("square", &2u64)).await {
            Ok(response) => response
                .error()
                .expect("no answer from a lost host")
                .message
                .clone(),
            Err(err) => err.to_string(),
        };
        assert!(why.contains(&doomed), "{why}");
    }
    // New spawns skip it.
    let more = within(master.spawn_many(
        4,
        SpawnOptions::cluster(&cluster, "slave.sh").output(Output::Null),
    ))
    .await
    .unwrap();
    assert_skipped(&cluster, &more, &doomed, 1);
    within(master.close_all()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_comes_back_takes_slaves_again() {
    let mut fleet = ProcessFleet::start(&[8, 8]);
    let (a, b) = (url(fleet.addr(0)), url(fleet.addr(1)));
    let cluster = cluster_of(&fleet.urls())
        .await
        .placement(RoundRobin::default())
        .build()
        .await
        .unwrap();
    let master = Master::new();
    let options = || SpawnOptions::cluster(&cluster, "slave.sh").output(Output::Null);
    let first = within(master.spawn_many(2, options())).await.unwrap();
    assert_eq!(per_host(&first).len(), 2);

    // A dies: its slave is lost, and spawns go to B.
    fleet.kill9(0);
    let on_a = first.iter().find(|s| host_of(s) == a).unwrap();
    within(on_a.exited()).await;
    let during = within(master.spawn_many(3, options())).await.unwrap();
    assert!(during.iter().all(|s| host_of(s) == b));
    assert!(matches!(cluster.hosts()[0].health, HostHealth::Down { .. }));

    // A comes back on the same port: the probe finds it, and it takes slaves again.
    fleet.restart(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while cluster.hosts()[0].health != HostHealth::Up {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            cluster.hosts()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = within(master.spawn_many(4, options())).await.unwrap();
    assert!(
        after.iter().any(|s| host_of(s) == a),
        "{:?}",
        per_host(&after)
    );
    within(master.close_all()).await.unwrap();
}
