//! Finding slaves: all, busy, idle, groups, least busy, by id, alias and path; and slaves
//! attached over an in-memory link.

mod common;

use common::{slave_options, spawn_ready, within};
use distio_master::{Link, Master, SlaveState, Target};
use distio_proto::FrameCodec;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_find_slaves_by_state_group_id_alias_and_path() {
    let master = Master::new();
    let red = within(master.spawn_many(2, slave_options().alias("red").group("red")))
        .await
        .unwrap();
    let blue = spawn_ready(&master, slave_options().alias("blue").group("blue")).await;
    for s in &red {
        within(s.ready()).await.unwrap();
    }
    assert_eq!(master.all().len(), 3);
    assert_eq!(master.local().len(), 3);
    assert!(master.remote().is_empty());
    assert_eq!(master.in_group("red").ids(), red.ids());
    assert_eq!(master.not_in_group("red").ids(), vec![blue.id()]);
    assert!(master.belongs_to_group("blue", "blue"));
    assert!(!master.belongs_to_group(&red[0], "blue"));
    assert_eq!(master.by_id(blue.id()).unwrap(), blue);
    assert_eq!(master.by_alias("red-1").unwrap(), red[1]);
    assert_eq!(master.slave(&blue).unwrap(), blue);
    assert!(master.slave(999u64).is_none());
    let exe = std::env::current_exe().unwrap();
    assert_eq!(master.with_path(&exe).len(), 3);
    assert!(master.with_path("/elsewhere").is_empty());

    // Make red[0] busy.
    let busy = tokio::spawn(red[0].exec("sleep", &2000u64).into_future());
    while red[0].pending() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(master.busy().ids(), vec![red[0].id()]);
    assert_eq!(master.idle().len(), 2);
    assert_eq!(
        master.idle_in([Target::group("red")]).unwrap().ids(),
        vec![red[1].id()]
    );
    assert_eq!(master.least_busy_in_group("red").unwrap(), red[1]);
    assert_eq!(
        master.least_busy_in([&red[0], &blue]).unwrap().unwrap(),
        blue
    );
    assert_ne!(master.least_busy().unwrap(), red[0]);
    within(busy).await.unwrap().unwrap();

    // Groups can change.
    blue.set_group(Some("red".into()));
    assert_eq!(master.in_group("red").len(), 3);
    assert_eq!(blue.group().as_deref(), Some("red"));
    assert!(master.in_group("nobody").is_empty());
    assert!(master.least_busy_in_group("nobody").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_in_memory_slave_behaves_like_a_process() {
    let master = Master::new();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let serving = tokio::spawn(
        distio_slave::SlaveProcess::new()
            .task("square", |n: u64, _| async move { Ok(n * n) })
            .serve_on(theirs),
    );
    let slave = master
        .attach(
            Link::from_io(ours, FrameCodec::new()),
            "in-memory",
            Some("mem".into()),
            None,
        )
        .unwrap();
    assert_eq!(
        within(slave.exec("square", &11u64))
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        121
    );
    assert!(slave.is_remote());
    assert_eq!(slave.location().to_string(), "in-memory");
    assert_eq!(slave.exit_status(), None);
    within(slave.close()).await;
    assert_eq!(slave.state(), SlaveState::Ended);
    within(serving).await.unwrap().unwrap();
}
