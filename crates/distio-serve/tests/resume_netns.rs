//! Resuming sessions over a real network path: the real `distio-serve` in a network
//! namespace of `common::netns`, whose link is taken down (TCP connections stall, nothing
//! is reset) and brought back. Skips (passes, saying so on stderr) unless run as root where
//! `ip netns` works.

mod common;

use common::netns::{LabServe, NetLab};
use common::{process_gone, wait_gone, within};
use distio_master::prelude::*;
use distio_master::{LinkSettings, Master, MasterError, Output, SpawnOptions};
use std::time::Duration;

/// The master's link: a cut is noticed within about a second.
fn link(window: Duration) -> LinkSettings {
    LinkSettings {
        heartbeat_interval: Duration::from_millis(300),
        heartbeat_misses: 3,
        resume_window: window,
    }
}

/// Starts the server in host 0 with a 300 ms × 3 heartbeat and `grace` to resume in.
fn start_serve(lab: &NetLab, grace: &str) -> LabServe {
    let dir = std::env::temp_dir().join(format!(
        "distio-resume-netns-{}-{grace}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("a config directory");
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_interval = \"300ms\"\nheartbeat_misses = 3\nresume_grace = \"{grace}\"\n\
             kill_grace = \"1s\"\n"
        ),
    )
    .expect("write the config");
    let server = lab.start_serve(0, 0, &["--config", &config.to_string_lossy()]);
    let _ = std::fs::remove_dir_all(&dir);
    server
}

/// Takes host 0's link down (`up` false) or up, off the runtime's threads.
async fn set_link(lab: &NetLab, up: bool) {
    tokio::task::block_in_place(|| {
        if up {
            lab.restore(0);
        } else {
            lab.cut(0);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_bounces_through_twenty_link_cuts_without_loss_duplication_or_reordering() {
    let Some(lab) = NetLab::new(1) else {
        return;
    };
    let server = start_serve(&lab, "30s");
    let master = Master::new();
    let options = SpawnOptions::remote(server.url(), "slave.sh")
        .output(Output::Null)
        .link(link(Duration::from_secs(30)));
    let slave = within(master.spawn(options)).await.expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let pid = slave.pid().expect("a pid");
    let mut cuts = 0;
    for round in 1..=100u64 {
        // The slave counts its calls: a request lost, run twice or out of order shows as
        // an answer other than the round's number.
        let bounce = slave.exec("count", &());
        let answer = if round % 5 == 3 && cuts < 20 {
            cuts += 1;
            set_link(&lab, false).await;
            let restore = async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                set_link(&lab, true).await;
            };
            let (answer, ()) = tokio::join!(
                tokio::time::timeout(Duration::from_secs(60), bounce),
                restore
            );
            answer.unwrap_or_else(|_| panic!("no answer across cut {cuts} within 60 s"))
        } else {
            within(bounce).await
        };
        let count: u64 = answer
            .unwrap_or_else(|e| panic!("round {round}: {e}"))
            .value()
            .expect("a number");
        assert_eq!(count, round, "round {round} (after {cuts} cuts)");
    }
    assert_eq!(cuts, 20);
    assert_eq!(slave.pid(), Some(pid), "the same slave all along");
    assert!(!process_gone(pid));
    drop(master);
    drop(server);
    assert!(wait_gone(pid).await, "slave {pid} outlived its server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_longer_than_the_grace_ends_the_slaves_and_fails_the_pending_requests() {
    let Some(lab) = NetLab::new(1) else {
        return;
    };
    let server = start_serve(&lab, "2s");
    let master = Master::new();
    let options = SpawnOptions::remote(server.url(), "slave.sh")
        .output(Output::Null)
        .link(link(Duration::from_secs(60)));
    let slave = within(master.spawn(options)).await.expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let pid = slave.pid().expect("a pid");
    let answer: u64 = within(slave.exec("count", &()))
        .await
        .expect("request")
        .value()
        .expect("a number");
    assert_eq!(answer, 1);

    set_link(&lab, false).await;
    let pending = slave.exec("sleep", &100_000u64);
    // The server notices the silence, waits its 2 s grace, then ends the slave: gone by
    // pid (the lab shares the test's pid namespace).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !process_gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slave {pid} still runs 30 s into the cut"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_link(&lab, true).await;

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
    assert!(message.contains(&server.addr.to_string()), "{message}");
    // The master gave up at the server's grace (it redials no longer than that), or, back
    // on the link, the server refused the resume: the session had ended either way.
    assert!(
        message.contains("refused to resume") || message.contains("could not be resumed"),
        "{message}"
    );
    // Nothing revives the slave.
    let again = within(slave.exec("count", &())).await;
    assert!(
        again.is_err() || again.as_ref().is_ok_and(|r| r.error().is_some()),
        "{again:?}"
    );
    drop(master);
}
