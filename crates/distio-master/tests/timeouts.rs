//! Timeouts and catch-all at the three levels (master, slave, request), and their
//! precedence, against real slave processes.

mod common;

use common::{slave_options, spawn_ready, within};
use distio_master::prelude::*;
use distio_master::{ErrorKind, Master, MasterError, Metadata, Timeout};
use std::time::Duration;

const SHORT: Duration = Duration::from_millis(300);
const SLOW_MS: u64 = 3000;

fn assert_timed_out(response: &distio_master::Response) {
    let error = response.error().expect("a timeout error");
    assert_eq!(error.kind, ErrorKind::TimedOut, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_resolves_with_a_timeout_error_and_leaves_nothing_behind() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let response = within(slave.exec("sleep", &1500u64).timeout(SHORT))
        .await
        .unwrap();
    assert_timed_out(&response);
    let message = &response.error().unwrap().message;
    assert!(
        message.contains(&format!("request {}", response.request_id())),
        "{message}"
    );
    assert!(
        message.contains("\"sleep\"") && message.contains("300ms"),
        "{message}"
    );
    assert_eq!(slave.pending(), 0, "the timed-out request is forgotten");
    // The late reply arrives and is dropped; the slave carries on.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(slave.received(), 1);
    assert_eq!(slave.pending(), 0);
    assert_eq!(
        within(slave.exec("square", &6u64))
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        36
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slave_default_timeout_applies_and_a_request_can_override_it() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    slave.set_default_timeout(SHORT);
    assert_eq!(slave.default_timeout(), Timeout::After(SHORT));
    assert_timed_out(&within(slave.exec("sleep", &SLOW_MS)).await.unwrap());
    // Request level wins; `Never` means no timeout at all.
    let done = within(slave.exec("sleep", &1200u64).timeout(Timeout::Never))
        .await
        .unwrap();
    assert_eq!(done.value::<u64>().unwrap(), 1200);
    let done = within(
        slave
            .exec("sleep", &1200u64)
            .timeout(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    assert!(done.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_default_timeout_applies_below_slave_and_request() {
    let master = Master::new();
    let slaves = within(master.spawn_many(2, slave_options())).await.unwrap();
    for slave in &slaves {
        within(slave.ready()).await.unwrap();
    }
    master.set_default_timeout(SHORT);
    assert_timed_out(&within(slaves[0].exec("sleep", &SLOW_MS)).await.unwrap());
    // A slave default of `Never` switches it off for that slave only.
    slaves[1].set_default_timeout(Timeout::Never);
    assert!(
        within(slaves[1].exec("sleep", &1200u64))
            .await
            .unwrap()
            .is_ok()
    );
    assert_timed_out(&within(slaves[0].exec("sleep", &SLOW_MS)).await.unwrap());
    // Removing the master default removes the timeout.
    master.set_default_timeout(Timeout::Inherit);
    assert!(
        within(slaves[0].exec("sleep", &1200u64))
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slave_sees_the_settings_in_force() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    master.set_default_timeout(Duration::from_secs(7));
    let (timeout, catch_all): (Option<u64>, Option<bool>) = within(slave.exec("meta", &()))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!((timeout, catch_all), (Some(7000), Some(false)));
    let caller = Metadata::new().with_timeout(Duration::from_secs(9));
    let seen: (Option<u64>, Option<bool>) = within(slave.exec("meta", &()).meta(caller.clone()))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(seen, (Some(9000), Some(false)));
    assert_eq!(
        caller,
        Metadata::new().with_timeout(Duration::from_secs(9)),
        "caller's metadata untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_all_at_each_level_turns_error_responses_into_errors() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    // Default: errors come back inside the response.
    assert!(
        within(slave.exec("fail", "x"))
            .await
            .unwrap()
            .error()
            .is_some()
    );
    // Master level.
    master.set_default_catch_all(true);
    let err = within(slave.exec("fail", "x")).await.unwrap_err();
    assert!(
        matches!(&err, MasterError::Task { error, .. } if error.kind == ErrorKind::HandlerFailed),
        "{err}"
    );
    // Slave level overrides master.
    slave.set_default_catch_all(false);
    assert!(
        within(slave.exec("fail", "x"))
            .await
            .unwrap()
            .error()
            .is_some()
    );
    // Request level overrides slave.
    let err = within(slave.exec("do some undefined task", &()).catch_all(true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MasterError::Task { error, .. } if error.kind == ErrorKind::UnknownTask),
        "{err}"
    );
    assert!(err.to_string().contains("does not listen to task"), "{err}");
    // Timeouts are caught too.
    let err = within(slave.exec("sleep", &SLOW_MS).timeout(SHORT).catch_all(true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MasterError::Task { error, .. } if error.kind == ErrorKind::TimedOut),
        "{err}"
    );
    // Successful responses are unaffected.
    assert!(
        within(slave.exec("square", &2u64).catch_all(true))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_with_catch_all_fails_on_the_first_error() {
    let master = Master::new();
    let slaves = within(master.spawn_many(3, slave_options())).await.unwrap();
    let err = within(master.tell(&slaves).to("fail", "all fail").catch_all(true))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("all fail"), "{err}");
    let ok = within(master.tell(&slaves).to("fail", "kept"))
        .await
        .unwrap();
    assert_eq!(ok.errors().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_timeout_times_out_at_once_unsent_and_never_is_sent_as_none() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let sent = slave.sent();
    let response = within(slave.exec("sleep", &SLOW_MS).timeout(Duration::ZERO))
        .await
        .unwrap();
    assert_timed_out(&response);
    assert_eq!(slave.sent(), sent, "a zero timeout sends nothing");
    assert_eq!(slave.pending(), 0);
    // `Never` overrides every default and reaches the slave as the wire's "none".
    master.set_default_timeout(Duration::from_secs(7));
    slave.set_default_timeout(Duration::from_secs(8));
    let (timeout, _): (Option<u64>, Option<bool>) =
        within(slave.exec("meta", &()).timeout(Timeout::Never))
            .await
            .unwrap()
            .value()
            .unwrap();
    assert_eq!(timeout, None);
}
