//! Finding slaves: `Master::all` narrowed by composable filters (idle, busy, groups,
//! local/remote, path) and picks (least busy, by id, by alias); `tell` to one target or
//! many; and slaves attached over an in-memory link.

mod common;

use common::{slave_options, spawn_ready, within};
use distio_master::prelude::*;
use distio_master::{Link, Master, MasterError, SlaveState, Target};
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
    assert_eq!(master.all().local().len(), 3);
    assert!(master.all().remote().is_empty());
    assert_eq!(master.all().in_group("red").ids(), red.ids());
    assert_eq!(master.all().not_in_group("red").ids(), vec![blue.id()]);
    assert!(master.slave("blue").unwrap().in_group("blue"));
    assert!(!red[0].in_group("blue"));
    assert_eq!(master.slave(blue.id()).unwrap(), blue);
    assert_eq!(master.all().by_id(blue.id()).unwrap(), blue);
    assert_eq!(master.slave("red-1").unwrap(), red[1]);
    assert_eq!(master.all().by_alias("red-1").unwrap(), red[1]);
    assert_eq!(master.slave(&blue).unwrap(), blue);
    assert!(master.slave(999u64).is_none());
    assert!(master.all().by_id(999).is_none());
    let exe = std::env::current_exe().unwrap();
    assert_eq!(master.all().with_path(&exe).len(), 3);
    assert!(master.all().with_path("/elsewhere").is_empty());

    // Make red[0] busy.
    let busy = tokio::spawn(red[0].exec("sleep", &2000u64).into_future());
    while red[0].pending() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(master.all().busy().ids(), vec![red[0].id()]);
    assert_eq!(master.all().idle().len(), 2);
    assert_eq!(
        master.slaves(Target::group("red")).unwrap().idle().ids(),
        vec![red[1].id()]
    );
    assert_eq!(master.all().in_group("red").least_busy().unwrap(), red[1]);
    assert_eq!(
        master
            .slaves([&red[0], &blue])
            .unwrap()
            .least_busy()
            .unwrap(),
        blue
    );
    assert!(matches!(
        master.slaves(["red", "nobody"]),
        Err(MasterError::NoSuchSlave { .. })
    ));
    assert_ne!(master.all().least_busy().unwrap(), red[0]);
    within(busy).await.unwrap().unwrap();

    // Groups can change.
    blue.set_group(Some("red".into()));
    assert_eq!(master.all().in_group("red").len(), 3);
    assert_eq!(blue.group().as_deref(), Some("red"));
    assert!(master.all().in_group("nobody").is_empty());
    assert!(master.all().in_group("nobody").least_busy().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composed_filters_intersect_and_picks_choose_among_what_is_left() {
    let master = Master::new();
    let x = within(master.spawn_many(3, slave_options().alias("x").group("x")))
        .await
        .unwrap();
    let y = spawn_ready(&master, slave_options().alias("y").group("y")).await;
    for s in &x {
        within(s.ready()).await.unwrap();
    }
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let serving = tokio::spawn(
        distio_slave::SlaveProcess::new()
            .task("sleep", |ms: u64, _| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(ms)
            })
            .serve_on(theirs),
    );
    let attached = master
        .attach(
            Link::from_io(ours, FrameCodec::new()),
            "in-memory",
            Some("mem".into()),
            Some("x".into()),
        )
        .unwrap();
    within(attached.ready()).await.unwrap();

    // x[0] gets two requests, x[1] one, x[2] none.
    let mut sleeping = Vec::new();
    for s in [&x[0], &x[0], &x[1]] {
        sleeping.push(tokio::spawn(s.exec("sleep", &1500u64).into_future()));
    }
    while x[0].pending() < 2 || x[1].pending() < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // idle ∩ group, in either order.
    let free_x = master.all().idle().in_group("x");
    assert_eq!(free_x.ids(), vec![x[2].id(), attached.id()]);
    assert_eq!(master.all().in_group("x").idle(), free_x);
    assert_eq!(
        master.all().busy().in_group("x").ids(),
        vec![x[0].id(), x[1].id()]
    );
    assert!(master.all().busy().in_group("y").is_empty());

    // least busy of a group, of the busy ones, and none of an empty selection.
    // (x[2] and the attached slave tie at none pending: the lower id wins.)
    assert_eq!(master.all().in_group("x").least_busy().unwrap(), x[2]);
    assert_eq!(master.all().busy().least_busy().unwrap(), x[1]);
    assert!(master.all().busy().in_group("y").least_busy().is_none());

    // local / remote, combined with groups.
    assert_eq!(master.all().remote().ids(), vec![attached.id()]);
    assert_eq!(master.all().in_group("x").local().len(), 3);
    assert_eq!(master.all().local().not_in_group("x").ids(), vec![y.id()]);
    assert_eq!(
        master.all().remote().in_group("x").by_alias("mem").unwrap(),
        attached
    );

    // by alias, after filtering: only what the filters kept.
    assert_eq!(master.all().in_group("x").by_alias("x-2").unwrap(), x[2]);
    assert!(master.all().in_group("x").by_alias("y").is_none());
    assert!(master.all().idle().by_alias("x").is_none());
    assert_eq!(master.all().busy().by_alias("x").unwrap(), x[0]);

    // A custom filter.
    let exe = std::env::current_exe().unwrap();
    assert_eq!(
        master
            .all()
            .with_path(&exe)
            .filter(|s| s.alias().is_some_and(|a| a.starts_with('x')))
            .ids(),
        x.ids()
    );

    for s in sleeping {
        within(s).await.unwrap().unwrap();
    }
    assert_eq!(master.all().idle().len(), 5);
    within(attached.close()).await.unwrap();
    within(serving).await.unwrap().unwrap();
    assert!(master.all().remote().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tell_takes_one_target_without_an_array() {
    let master = Master::new();
    let slaves = within(master.spawn_many(2, slave_options().alias("t").group("t")))
        .await
        .unwrap();
    let other = spawn_ready(&master, slave_options().alias("o")).await;

    let one = within(master.tell(&other).to("square", &3u64))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].value::<u64>().unwrap(), 9);
    assert_eq!(one[0].slave().id(), other.id());

    let owned = within(master.tell(other.clone()).to("square", &4u64))
        .await
        .unwrap();
    assert_eq!(owned.values::<u64>().unwrap(), vec![16]);

    let by_alias = within(master.tell("t-1").to("square", &5u64))
        .await
        .unwrap();
    assert_eq!(by_alias.len(), 1);
    assert_eq!(by_alias[0].slave().id(), slaves[1].id());

    let by_id = within(master.tell(slaves[0].id()).to("square", &6u64))
        .await
        .unwrap();
    assert_eq!(by_id[0].slave().id(), slaves[0].id());

    // A group still gives every member's response.
    let group = within(master.tell(Target::group("t")).to("square", &7u64))
        .await
        .unwrap();
    assert_eq!(group.values::<u64>().unwrap(), vec![49, 49]);

    // Collections still work: arrays, a slave array, a slice, a vector.
    let array = within(master.tell([&slaves[0], &other]).to("square", &2u64))
        .await
        .unwrap();
    assert_eq!(array.len(), 2);
    assert_eq!(
        within(master.tell(&slaves).to("square", &2u64))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        within(master.tell(&slaves[1..]).to("square", &2u64))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        within(master.tell(vec!["t", "o"]).to("square", &2u64))
            .await
            .unwrap()
            .len(),
        2
    );

    // The filters feed tell directly.
    let idle = within(
        master
            .tell(master.all().idle().in_group("t"))
            .to("square", &1u64),
    )
    .await
    .unwrap();
    assert_eq!(idle.len(), 2);

    let missing = within(master.tell("nobody").to("square", &1u64))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, MasterError::NoSuchSlave { .. }),
        "{missing}"
    );
    within(master.close_all()).await.unwrap();
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
    within(slave.close()).await.unwrap();
    assert_eq!(slave.state(), SlaveState::Ended);
    within(serving).await.unwrap().unwrap();
}
