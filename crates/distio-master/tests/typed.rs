//! Typed task contracts: declared once, implemented by the slave, called by the master.

mod common;

use common::{Sqrt, SqrtError, slave_options, spawn_ready, within};
use distio_master::{ErrorKind, Master, MasterError, Task};
use std::time::Duration;

/// A contract the test slave does not implement.
struct Missing;

impl Task for Missing {
    const NAME: &'static str = "missing";
    type Input = ();
    type Output = ();
    type Error = ();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_call_returns_the_tasks_own_result_typed() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let root: Result<u32, SqrtError> = within(slave.call::<Sqrt>(&1_000_000)).await.unwrap();
    assert_eq!(root, Ok(1000));
    let refused = within(slave.call::<Sqrt>(&-4)).await.unwrap();
    assert_eq!(refused, Err(SqrtError::Negative(-4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_around_a_typed_call_are_master_errors() {
    let master = Master::new();
    // Catch-all off everywhere: a typed call still reports failures as `Err`.
    master.set_default_catch_all(false);
    let slave = spawn_ready(&master, slave_options()).await;
    let missing = within(slave.call::<Missing>(&())).await;
    assert!(
        matches!(&missing, Err(MasterError::Task { error, .. }) if error.kind == ErrorKind::UnknownTask),
        "{missing:?}"
    );
    within(slave.kill(distio_master::Signal::KILL))
        .await
        .unwrap();
    within(slave.exited()).await;
    let gone = within(slave.call::<Sqrt>(&4).timeout(Duration::from_secs(5))).await;
    assert!(matches!(gone, Err(MasterError::Task { .. })), "{gone:?}");
}
