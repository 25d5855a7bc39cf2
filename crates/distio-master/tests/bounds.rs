//! Every wait has a bound and every queue a limit: timeouts that fire whatever the slave
//! does, a cap on requests in flight, an outbox that stops growing when the slave stops
//! reading, bounded event subscriptions, ping and shutdown with a bound.

mod common;

use common::{MODE_ENV, slave_options, spawn_ready, wait_gone, within};
use distio_master::prelude::*;
use distio_master::{ErrorKind, Master, MasterError, Response, Slave};
use futures_util::future::join_all;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_millis(500);
/// How late a timeout may fire on a loaded machine and still count as firing by itself.
const SLACK: Duration = Duration::from_secs(4);

fn timed_out(result: &Result<Response, MasterError>) -> bool {
    matches!(result, Ok(r) if r.error().is_some_and(|e| e.kind == ErrorKind::TimedOut))
}

/// A slave that never answers: no ready ("silent"), or ready but deaf to requests ("mute").
async fn quiet_slave(master: &Master, mode: &str) -> Slave {
    within(master.spawn(slave_options().env(MODE_ENV, mode).wait_ready(false)))
        .await
        .expect("spawn")
}

async fn one_request_times_out(slave: &Slave, task: &str, data: u64) {
    let started = Instant::now();
    let result = within(slave.exec(task, &data).timeout(LIMIT)).await;
    let took = started.elapsed();
    assert!(timed_out(&result), "{task}: {result:?}");
    assert!(took >= LIMIT, "fired early: {took:?}");
    assert!(took < LIMIT + SLACK, "fired {took:?} after being sent");
}

#[tokio::test(flavor = "current_thread")]
async fn a_lone_timeout_fires_when_the_slave_never_answers() {
    let master = Master::new();
    let silent = quiet_slave(&master, "silent").await;
    one_request_times_out(&silent, "echo", 1).await;
    let mute = quiet_slave(&master, "mute").await;
    within(mute.ready()).await.expect("mute slave handshakes");
    one_request_times_out(&mute, "echo", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_timeout_fires_when_the_handler_never_yields() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    // The slave's only thread spins for 20 s: it cannot enforce the timeout itself.
    one_request_times_out(&slave, "spin", 20_000).await;
    drop(slave);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_timeouts_fire_by_themselves() {
    let master = Master::new();
    for mode in ["silent", "mute"] {
        let slave = quiet_slave(&master, mode).await;
        let started = Instant::now();
        let all = within(join_all(
            (0..50_000u64).map(|n| slave.exec("echo", &n).timeout(LIMIT).into_future()),
        ))
        .await;
        let took = started.elapsed();
        let fired = all.iter().filter(|r| timed_out(r)).count();
        assert_eq!(fired, all.len(), "{mode}: every request times out");
        assert!(took < LIMIT + SLACK * 3, "{mode}: took {took:?}");
        assert_eq!(slave.pending(), 0, "{mode}: nothing left pending");
    }
}

use std::future::IntoFuture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_cap_wait_unsent() {
    let master = Master::new();
    let slave = within(
        master.spawn(
            slave_options()
                .env(MODE_ENV, "mute")
                .max_in_flight(8)
                .wait_ready(false),
        ),
    )
    .await
    .expect("spawn");
    within(slave.ready()).await.expect("ready");
    let calls: Vec<_> = (0..1000u64)
        .map(|n| tokio::spawn(slave.exec("echo", &n).into_future()))
        .collect();
    within(async {
        while slave.pending() < 1000 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(slave.sent(), 8, "only the first 8 are written");
    // Closing fails them all, written or waiting.
    let slave_for_close = slave.clone();
    slave_for_close.close().await.unwrap();
    for call in calls {
        let result = within(call).await.expect("task");
        assert!(
            matches!(&result, Ok(r) if r.error().is_some_and(|e| e.kind == ErrorKind::Closed)),
            "{result:?}"
        );
    }
    assert_eq!(slave.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cap_holds_with_more_requests_than_it() {
    let master = Master::new();
    let slave = quiet_slave(&master, "mute").await;
    within(slave.ready()).await.expect("ready");
    let n = distio_master::DEFAULT_MAX_IN_FLIGHT + 4000;
    let calls: Vec<_> = (0..n as u64)
        .map(|i| {
            tokio::spawn(
                slave
                    .exec("echo", &i)
                    .timeout(Duration::from_secs(60))
                    .into_future(),
            )
        })
        .collect();
    within(async {
        while slave.pending() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(slave.sent(), distio_master::DEFAULT_MAX_IN_FLIGHT as u64);
    // Killing the slave fails them all at once, written or waiting.
    within(slave.kill(distio_master::Signal::KILL))
        .await
        .expect("kill");
    for call in calls {
        let result = within(call).await.expect("task");
        assert!(
            matches!(&result, Ok(r) if r.error().is_some()),
            "{result:?}"
        );
    }
    assert_eq!(slave.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_that_stops_reading_gets_a_bounded_outbox_and_no_dead_frames() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options().outbox_limit(256 * 1024)).await;
    // The slave's thread sleeps: it reads nothing for 8 s.
    let blocked = tokio::spawn(slave.exec("block", &8000u64).into_future());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = slave.sent();
    let chunk = distio_master::Payload::encode(&vec![7u8; 64 * 1024]).expect("encode");
    let mut offered = 0;
    for _round in 0..3 {
        let round = within(join_all((0..100).map(|_| {
            slave
                .exec_payload("big", chunk.clone())
                .timeout(Duration::from_millis(300))
                .into_future()
        })))
        .await;
        offered += round.len() as u64;
        let answered: Vec<_> = round.iter().filter(|r| !timed_out(r)).collect();
        assert!(
            answered.is_empty(),
            "the slave is not reading: {answered:?}"
        );
    }
    let written = slave.sent() - before;
    // Kernel socket buffer plus the 256 KiB outbox: a handful of 64 KiB frames, not 300.
    assert!(
        written < 40,
        "{written} of {offered} big requests were queued"
    );
    assert!(within(blocked).await.expect("task").is_ok());
    let seen: u64 = within(slave.exec("big_seen", &()))
        .await
        .expect("seen")
        .value()
        .expect("count");
    assert!(
        seen < written,
        "frames of timed-out requests still queued were dropped unsent: {seen} seen, {written} queued"
    );
    // The link works as before.
    let echoed: String = within(slave.exec("echo", &"still here"))
        .await
        .expect("echo")
        .value()
        .expect("value");
    assert_eq!(echoed, "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_nobody_reads_stays_bounded_and_counts_what_it_drops() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let mut events = slave.subscribe_all();
    for _ in 0..10 {
        within(slave.exec("emit", &("tick".to_owned(), 1000u32)))
            .await
            .expect("emit");
    }
    let limit = distio_master::EVENT_QUEUE_LIMIT as u64;
    within(async {
        while events.dropped() < 10_000 - limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut kept = 0;
    while events.try_recv().is_some() {
        kept += 1;
    }
    assert_eq!(kept, limit);
    assert_eq!(events.dropped(), 10_000 - limit);
    // Dropping the subscription unsubscribes; later events go nowhere.
    drop(events);
    within(slave.exec("emit", &("tick".to_owned(), 10u32)))
        .await
        .expect("emit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_to_a_blocked_slave_times_out() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    within(slave.ping()).await.expect("a free slave answers");
    let _spinning = tokio::spawn(slave.exec("spin", &20_000u64).into_future());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let result = within(slave.ping_within(Duration::from_secs(1))).await;
    assert!(
        matches!(result, Err(MasterError::PingTimedOut { .. })),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_of_a_slave_whose_handler_never_finishes_ends_it_anyway() {
    let master = Master::new();
    let slave = spawn_ready(
        &master,
        slave_options()
            .shutdown_grace(Duration::from_secs(1))
            .close_grace(Duration::from_secs(1)),
    )
    .await;
    let pid = slave.pid().expect("pid");
    let forever = tokio::spawn(slave.exec("sleep", &3_600_000u64).into_future());
    tokio::time::sleep(Duration::from_millis(200)).await;
    within(slave.shutdown()).await.unwrap();
    assert!(slave.has_exited());
    let result = within(forever).await.expect("task");
    assert!(
        matches!(&result, Ok(r) if r.error().is_some()),
        "the pending request fails: {result:?}"
    );
    assert!(wait_gone(pid).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_handshake_that_never_comes_is_bounded() {
    let master = Master::new();
    let silent = quiet_slave(&master, "silent").await;
    let started = Instant::now();
    let result = within(silent.ready_within(LIMIT)).await;
    assert!(
        matches!(result, Err(MasterError::NotReady { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < LIMIT + SLACK);
}
