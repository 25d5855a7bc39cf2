//! A real slave process, started by a real master: once `serve` has taken the master's
//! connection, the variable that named it is gone from the slave's environment and from
//! the environment of the programs it starts.
//!
//! This test binary is also the slave: `slave_options()` starts it again with
//! `--exact __distio_slave`, and that test serves when it finds it was launched as a
//! slave (in a normal run it returns at once).

use distio_master::prelude::*;
use distio_master::{Master, Output, SpawnOptions};
use distio_proto::local::SLAVE_FD_ENV;
use distio_slave::SlaveProcess;
use std::future::IntoFuture;
use std::time::Duration;

type R<T> = Result<T, distio_slave::TaskFailure>;

/// Fails the test instead of hanging if `fut` takes more than 30 s.
async fn within<F: IntoFuture>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut.into_future())
        .await
        .expect("operation hung for 30 s")
}

fn slave_options() -> SpawnOptions {
    SpawnOptions::current_exe()
        .expect("current exe")
        .args([
            "__distio_slave",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .output(Output::Null)
}

/// What the slave sees of the variable: in its own environment, through
/// `launched_as_slave`, and in a shell it starts.
type Seen = (bool, bool, String);

/// Set for a slave that calls `take_connection` before building a multi-thread runtime.
const TAKE_EARLY_ENV: &str = "DISTIO_TEST_TAKE_EARLY";

/// What such a slave saw right after `take_connection`: its result, whether the variable
/// was still set, `launched_as_slave()`, and a second `take_connection`'s result.
type Early = Option<(bool, bool, bool, bool)>;

#[test]
fn __distio_slave() {
    let early: Early = std::env::var_os(TAKE_EARLY_ENV).map(|_| {
        let taken = distio_slave::take_connection().expect("take_connection");
        (
            taken,
            std::env::var_os(SLAVE_FD_ENV).is_some(),
            distio_slave::launched_as_slave(),
            distio_slave::take_connection().expect("take_connection again"),
        )
    });
    if !distio_slave::launched_as_slave() {
        return;
    }
    let runtime = if early.is_some() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    runtime.block_on(async {
        SlaveProcess::new()
            .task("early", move |_: (), _| async move { R::Ok(early) })
            .task("environment", |_: (), _| async move {
                let child = std::process::Command::new("sh")
                    .args(["-c", &format!("echo ${{{SLAVE_FD_ENV}:-unset}}")])
                    .output()?;
                let seen: Seen = (
                    std::env::var_os(SLAVE_FD_ENV).is_some(),
                    distio_slave::launched_as_slave(),
                    String::from_utf8_lossy(&child.stdout).trim().to_owned(),
                );
                R::Ok(seen)
            })
            .serve()
            .await
            .expect("serve")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slave_fd_variable_is_gone_once_serve_has_taken_the_connection() {
    let master = Master::new();
    let slave = within(master.spawn(slave_options())).await.expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let seen: Seen = within(slave.exec("environment", &()))
        .await
        .unwrap()
        .value()
        .unwrap();
    within(slave.close()).await.unwrap();
    assert_eq!(seen, (false, false, "unset".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_taken_before_the_runtime_starts_is_the_one_served() {
    let master = Master::new();
    let slave = within(master.spawn(slave_options().env(TAKE_EARLY_ENV, "1")))
        .await
        .expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let early: Early = within(slave.exec("early", &()))
        .await
        .unwrap()
        .value()
        .unwrap();
    let seen: Seen = within(slave.exec("environment", &()))
        .await
        .unwrap()
        .value()
        .unwrap();
    within(slave.close()).await.unwrap();
    // Taken at once (the variable gone, the connection held for serve), idempotent.
    assert_eq!(early, Some((true, false, true, true)));
    assert_eq!(seen, (false, false, "unset".to_owned()));
}

#[test]
fn take_connection_outside_a_slave_process_is_false() {
    assert!(!distio_slave::take_connection().unwrap());
    assert!(!distio_slave::launched_as_slave());
}
