//! Resuming a session whose link dropped: the real master, the real server, real slaves,
//! and a proxy between them that cuts or stalls the link.

mod common;

use common::proxy::Proxy;
use common::{process_gone, start, within};
use distio_master::prelude::*;
use distio_master::{LinkSettings, Master, MasterError, Output, SpawnOptions};
use std::time::Duration;

fn link(window: Duration) -> LinkSettings {
    LinkSettings {
        heartbeat_interval: Duration::from_millis(300),
        heartbeat_misses: 3,
        resume_window: window,
    }
}

fn options(proxy: &Proxy, window: Duration) -> SpawnOptions {
    SpawnOptions::remote(format!("ws://{}", proxy.addr), "slave.sh")
        .output(Output::Null)
        .link(link(window))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_bounces_through_twenty_drops_without_loss_duplication_or_reordering() {
    let server = start(|b| {
        b.heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(30))
    })
    .await;
    let proxy = Proxy::start(server.addr).await;
    let master = Master::new();
    let slave = within(master.spawn(options(&proxy, Duration::from_secs(30))))
        .await
        .expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let mut drops = 0;
    for round in 0..100u64 {
        if round % 5 == 2 && drops < 20 {
            if drops % 2 == 0 {
                proxy.cut();
            } else {
                proxy.blackhole();
            }
            drops += 1;
            let proxy_restore = async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                proxy.restore();
            };
            let bounce = slave.exec("echo", &format!("n{round}"));
            let (answer, ()) = tokio::join!(
                tokio::time::timeout(Duration::from_secs(60), bounce),
                proxy_restore
            );
            let answer: String = answer
                .expect("no answer across a drop within 60 s")
                .expect("request")
                .value()
                .expect("a string");
            assert_eq!(answer, format!("n{round}"));
            continue;
        }
        let answer: String = within(slave.exec("echo", &format!("n{round}")))
            .await
            .expect("request")
            .value()
            .expect("a string");
        assert_eq!(answer, format!("n{round}"), "round {round}");
    }
    assert_eq!(drops, 20);
    drop(master);
    server.stop.shutdown();
    let _ = within(server.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_longer_than_the_grace_ends_the_slaves_and_fails_the_requests() {
    let server = start(|b| {
        b.heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(2))
    })
    .await;
    let proxy = Proxy::start(server.addr).await;
    let master = Master::new();
    let slave = within(master.spawn(options(&proxy, Duration::from_secs(8))))
        .await
        .expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let pid = slave.pid().expect("a pid");
    proxy.cut();
    let pending = slave.exec("sleep", &100u64);
    // The server gives up after its grace: the slave is gone by pid.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !process_gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slave {pid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.restore();
    let failed = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("the pending request ends");
    let message = match failed {
        Ok(response) => response
            .error()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| panic!("the request succeeded: {response:?}")),
        Err(MasterError::Task { error, .. }) => error.message,
        Err(other) => other.to_string(),
    };
    assert!(message.contains(&proxy.addr.to_string()), "{message}");
    drop(master);
    server.stop.shutdown();
    let _ = within(server.task).await;
}
