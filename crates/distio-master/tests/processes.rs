//! What local slave processes are tied to, with real processes: a slave lives exactly as
//! long as its master process, not the thread that spawned it.

mod common;

use common::{process_gone, slave_options, spawn_ready, within};
use distio_master::Master;
use std::time::Duration;

// ----- A: a slave lives as long as its master process, not the spawning thread -----

#[test]
fn a_slave_outlives_the_thread_that_spawned_it() {
    let (runtime, master, slave) = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let master = Master::new();
        let slave = runtime.block_on(spawn_ready(&master, slave_options()));
        (runtime, master, slave)
    })
    .join()
    .unwrap();
    let pid = slave.pid().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !process_gone(pid),
        "slave {pid} died with its spawning thread"
    );
    runtime.block_on(async {
        let nine: u64 = within(slave.exec("square", &3u64))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(nine, 9);
        within(slave.close()).await;
    });
    drop(master);
}

#[test]
fn a_slave_outlives_the_blocking_thread_that_spawned_it() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(100))
        .enable_all()
        .build()
        .unwrap();
    let master = Master::new();
    let spawning = master.clone();
    let slave = runtime.block_on(async move {
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Handle::current().block_on(spawn_ready(&spawning, slave_options()))
        })
        .await
        .unwrap()
    });
    let pid = slave.pid().unwrap();
    // Far past the keep-alive: the blocking thread that spawned the slave has retired.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !process_gone(pid),
        "slave {pid} died with the retired blocking thread"
    );
    runtime.block_on(async {
        let four: u64 = within(slave.exec("square", &2u64))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(four, 4);
        within(slave.close()).await;
    });
}
