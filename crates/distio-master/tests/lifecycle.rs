//! Close, shutdown, kill, crashes, misbehaving slaves, aliases, spawn errors and orphans,
//! with real slave processes.

mod common;

use common::{MODE_ENV, master_process, slave_options, spawn_ready, wait_gone, within};
use distio_master::prelude::*;
use distio_master::{
    EndReason, ErrorKind, Master, MasterError, Output, Signal, SlaveState, SpawnOptions, Target,
};
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_pending_requests_runs_the_hook_and_refuses_new_ones() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options().alias("c").output(Output::Capture)).await;
    let pending = tokio::spawn(slave.exec("sleep", &20_000u64).into_future());
    while slave.pending() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = within(slave.close())
        .await
        .unwrap()
        .expect("an exit status");
    assert_eq!(status.code(), Some(0));
    let response = within(pending).await.unwrap().unwrap();
    let error = response.error().unwrap();
    assert_eq!(error.kind, ErrorKind::Closed, "{error}");
    assert!(
        error.message.contains("Slave #") && error.message.contains("closed"),
        "{error}"
    );
    let out = String::from_utf8(slave.captured_output().unwrap().stdout).unwrap();
    assert!(out.contains("close hook ran"), "{out}");

    let after = within(slave.exec("square", &1u64)).await.unwrap();
    let error = after.error().unwrap();
    assert_eq!(error.kind, ErrorKind::Closed);
    assert_eq!(
        error.message,
        format!(
            "Slave #{} (\"c\") has been closed; it takes no more requests",
            slave.id()
        )
    );
    assert!(slave.has_exited() && !slave.is_connected());
    assert_eq!(slave.state(), SlaveState::Ended);
    assert!(
        master.all().is_empty(),
        "a closed slave leaves the live list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_pending_requests_first() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let pending = tokio::spawn(slave.exec("sleep", &1500u64).into_future());
    while slave.pending() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let closing = tokio::spawn({
        let slave = slave.clone();
        async move { slave.shutdown().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = within(slave.exec("square", &1u64)).await.unwrap();
    assert!(
        refused
            .error()
            .unwrap()
            .message
            .contains("has been shut down"),
        "{:?}",
        refused.error()
    );
    let finished = within(pending).await.unwrap().unwrap();
    assert_eq!(
        finished.value::<u64>().unwrap(),
        1500,
        "pending work completed"
    );
    let status = within(closing).await.unwrap().unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_requests_in_flight_completes_every_one_with_the_signal() {
    let master = Master::new();
    let slaves = within(master.spawn_many(2, slave_options())).await.unwrap();
    let (victim, bystander) = (&slaves[0], &slaves[1]);
    within(victim.ready()).await.unwrap();
    let in_flight: Vec<_> = (0..5)
        .map(|_| tokio::spawn(victim.exec("sleep", &60_000u64).into_future()))
        .collect();
    while victim.pending() < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kill_9(victim.pid().unwrap());
    for request in in_flight {
        let response = within(request).await.unwrap().unwrap();
        let error = response.error().expect("an error");
        assert_eq!(error.kind, ErrorKind::SlaveExited, "{error}");
        assert!(error.message.contains("signal 9"), "{error}");
    }
    assert_eq!(within(victim.exited()).await.unwrap().signal(), Some(9));
    assert_eq!(victim.pending(), 0);
    // The other slave is untouched.
    assert_eq!(
        within(bystander.exec("square", &4u64))
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        16
    );
    assert_eq!(master.all().ids(), vec![bystander.id()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_that_exits_mid_request_reports_its_exit_code() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let waiting = tokio::spawn(slave.exec("sleep", &60_000u64).into_future());
    let exit = within(slave.exec("exit", &3i32)).await.unwrap();
    assert_eq!(exit.error().unwrap().kind, ErrorKind::SlaveExited);
    let other = within(waiting).await.unwrap().unwrap();
    assert!(
        other.error().unwrap().message.contains("code 3"),
        "{:?}",
        other.error()
    );
    assert_eq!(slave.exit_status().unwrap().code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_through_the_api_refuses_requests_at_once() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options().alias("k")).await;
    let in_flight = tokio::spawn(slave.exec("sleep", &60_000u64).into_future());
    while slave.pending() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    within(slave.kill(Signal::KILL)).await.unwrap();
    let refused = within(slave.exec("square", &1u64)).await.unwrap();
    assert!(
        refused
            .error()
            .unwrap()
            .message
            .contains("\"k\") has been killed"),
        "{:?}",
        refused.error()
    );
    let response = within(in_flight).await.unwrap().unwrap();
    assert_eq!(response.error().unwrap().kind, ErrorKind::SlaveExited);
    assert_eq!(within(slave.exited()).await.unwrap().signal(), Some(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_lifecycle_calls_take_targets_and_groups() {
    let master = Master::new();
    let _a = within(master.spawn_many(2, slave_options().group("a")))
        .await
        .unwrap();
    let b = within(master.spawn_many(2, slave_options().group("b")))
        .await
        .unwrap();
    within(master.close(Target::group("a"))).await.unwrap();
    assert_eq!(master.all().ids(), b.ids());
    within(master.shutdown(b[0].id())).await.unwrap();
    within(master.kill_all(Signal::TERM)).await.unwrap();
    within(master.exited_all()).await;
    within(b.exited()).await;
    assert!(master.all().is_empty());
    assert!(matches!(
        within(master.kill(99u64, Signal::KILL)).await,
        Err(MasterError::NoSuchSlave { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_slave_closes_its_link_and_the_master_carries_on() {
    for mode in ["garbage", "oversize"] {
        let master = Master::new();
        let bad = within(master.spawn(slave_options().env(MODE_ENV, mode).wait_ready(false)))
            .await
            .unwrap();
        let response = within(bad.exec("square", &2u64)).await.unwrap();
        let error = response.error().expect("an error");
        assert_eq!(error.kind, ErrorKind::Closed, "{mode}: {error}");
        assert!(
            error.message.contains("broke the protocol"),
            "{mode}: {error}"
        );
        assert!(
            within(bad.exited()).await.is_some(),
            "{mode}: the process was killed"
        );
        let good = spawn_ready(&master, slave_options()).await;
        assert_eq!(
            within(good.exec("square", &3u64))
                .await
                .unwrap()
                .value::<u64>()
                .unwrap(),
            9
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_are_unique_among_live_slaves_and_ids_are_never_reused() {
    let master = Master::new();
    let first = spawn_ready(&master, slave_options().alias("solo")).await;
    let err = within(master.spawn(slave_options().alias("solo")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MasterError::AliasTaken { alias, owner } if alias == "solo" && *owner == first.id()),
        "{err}"
    );
    assert_eq!(master.slave("solo").unwrap(), first);
    within(first.close()).await.unwrap();
    assert!(master.slave("solo").is_none());
    let second = spawn_ready(&master, slave_options().alias("solo")).await;
    assert!(second.id() > first.id(), "ids only grow");
    let err = within(master.spawn_many(2, slave_options().alias("solo")))
        .await
        .unwrap_err();
    assert!(matches!(err, MasterError::AliasTaken { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_errors_are_clear() {
    let master = Master::new();
    let missing = within(master.spawn(SpawnOptions::new("./no/such/slave")))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, MasterError::ProgramNotFound { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("./no/such/slave"));
    let dir = std::env::temp_dir().join(format!("distio-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let err = within(master.spawn(SpawnOptions::new(&plain)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MasterError::ProgramNotExecutable { .. }),
        "{err}"
    );
    let err = within(master.spawn(SpawnOptions::new(&dir)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MasterError::ProgramNotExecutable { .. }),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    // A program that is not a distio slave never becomes ready, and says why: spawn
    // waits for the handshake and fails...
    let err = within(master.spawn(SpawnOptions::new("/bin/true")))
        .await
        .unwrap_err();
    assert!(matches!(err, MasterError::NotReady { .. }), "{err}");
    assert!(master.all().is_empty());
    // ...or, not waiting, `ready` does.
    let not_slave = within(master.spawn(SpawnOptions::new("/bin/true").wait_ready(false)))
        .await
        .unwrap();
    let err = within(not_slave.ready()).await.unwrap_err();
    assert!(matches!(err, MasterError::NotReady { .. }), "{err}");
    assert!(master.all().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_master_leaves_no_slave_processes() {
    let master = Master::new();
    let slaves = within(master.spawn_many(3, slave_options())).await.unwrap();
    for slave in &slaves {
        within(slave.ready()).await.unwrap();
    }
    let pids: Vec<u32> = slaves.iter().map(|s| s.pid().unwrap()).collect();
    drop(slaves);
    drop(master);
    for pid in pids {
        assert!(
            wait_gone(pid).await,
            "slave process {pid} outlived its master"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_process_takes_its_slaves_with_it() {
    let mut master = master_process().spawn().unwrap();
    let mut lines = std::io::BufReader::new(master.stdout.take().unwrap()).lines();
    let slave_pid: u32 = loop {
        let line = lines
            .next()
            .expect("the master printed the slave pid")
            .unwrap();
        if let Some(pid) = line.strip_prefix("SLAVE_PID=") {
            break pid.trim().parse().unwrap();
        }
    };
    kill_9(master.id());
    master.wait().unwrap();
    assert!(
        wait_gone(slave_pid).await,
        "slave {slave_pid} outlived its killed master"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_slave_leaves_the_lists_and_frees_its_alias_at_once() {
    let master = Master::new();
    let old = spawn_ready(&master, slave_options().alias("k").group("g")).await;
    let other = spawn_ready(&master, slave_options()).await;
    within(old.kill(Signal::KILL)).await.unwrap();
    // Immediately: no waiting for the process to be reaped.
    assert_eq!(master.all().ids(), vec![other.id()]);
    assert!(master.slave("k").is_none());
    assert!(master.slave(old.id()).is_none());
    assert!(master.slave(&old).is_none());
    assert!(master.all().in_group("g").is_empty());
    assert!(master.all().busy().is_empty() && master.all().idle().ids() == vec![other.id()]);
    assert!(matches!(
        within(master.kill(old.id(), Signal::KILL)).await,
        Err(MasterError::NoSuchSlave { .. })
    ));
    let new = within(master.spawn(slave_options().alias("k")))
        .await
        .expect("the alias is free at once");
    assert_eq!(master.slave("k").unwrap(), new);
    // The old handle stays usable.
    assert_eq!(within(old.exited()).await.unwrap().signal(), Some(9));
    assert_eq!(old.state(), SlaveState::Ended);
    assert_eq!(old.exit_status().unwrap().signal(), Some(9));
    assert_eq!(old.end_reason(), Some(EndReason::Killed(Signal::KILL)));
    // The old slave's end did not free the alias the new one holds.
    assert_eq!(master.slave("k").unwrap(), new);
    let err = within(master.spawn(slave_options().alias("k")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MasterError::AliasTaken { owner, .. } if *owner == new.id()),
        "{err}"
    );
    assert_eq!(
        within(new.exec("whoami", &()))
            .await
            .unwrap()
            .value::<(u64, String)>()
            .unwrap(),
        (new.id(), "k".to_owned())
    );
    // A slave killed with a signal it survives is unlisted all the same, and waited for.
    within(master.kill_all(Signal::TERM)).await.unwrap();
    assert!(master.all().is_empty());
    within(master.exited_all()).await;
    assert!(new.has_exited() && other.has_exited());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_being_closed_or_shut_down_is_unlisted_when_that_is_asked() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options().alias("s")).await;
    let pending = tokio::spawn(slave.exec("sleep", &2000u64).into_future());
    while slave.pending() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shutting = tokio::spawn({
        let slave = slave.clone();
        async move { slave.shutdown().await }
    });
    while slave.is_connected() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Still finishing its request, yet listed nowhere, and its alias taken by another.
    assert!(!slave.has_exited());
    assert!(master.all().is_empty() && master.slave("s").is_none());
    let successor = within(master.spawn(slave_options().alias("s")))
        .await
        .unwrap();
    assert_eq!(
        within(pending)
            .await
            .unwrap()
            .unwrap()
            .value::<u64>()
            .unwrap(),
        2000
    );
    assert_eq!(
        within(shutting).await.unwrap().unwrap().unwrap().code(),
        Some(0)
    );
    assert_eq!(master.slave("s").unwrap(), successor);
    assert_eq!(slave.end_reason(), Some(EndReason::ShutDown));
    let closing = tokio::spawn({
        let successor = successor.clone();
        async move { successor.close().await }
    });
    while successor.is_connected() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(master.all().is_empty() && master.slave("s").is_none());
    within(closing).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_spawn_many_leaves_none_of_its_slaves_listed() {
    let master = Master::new();
    // The third slave's alias ("m-2") belongs to a live slave: the first two start, then
    // the call fails and rolls them back.
    let blocker = spawn_ready(&master, slave_options().alias("m-2")).await;
    let err = within(master.spawn_many(3, slave_options().alias("m").group("m")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MasterError::AliasTaken { alias, owner } if alias == "m-2" && *owner == blocker.id()),
        "{err}"
    );
    assert_eq!(master.all().ids(), vec![blocker.id()]);
    assert!(master.all().in_group("m").is_empty());
    assert!(master.slave("m").is_none() && master.slave("m-1").is_none());
    // Their aliases are free at once.
    let again = within(master.spawn_many(2, slave_options().alias("m")))
        .await
        .expect("the rolled-back aliases are free");
    assert_eq!(again.len(), 2);
    assert_eq!(master.slave("m").unwrap(), again[0]);
    assert_eq!(master.slave("m-1").unwrap(), again[1]);
    assert_eq!(master.all().len(), 3);
    // The rolled-back slaves are still waited for until they end.
    within(master.close_all()).await.unwrap();
    within(master.exited_all()).await;
    assert!(master.all().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_way_a_slave_ends_is_a_reason_to_match_on() {
    let master = Master::new();

    // Closed: the request pending at close, a later one, the handle, and with catch-all.
    let closed = spawn_ready(&master, slave_options()).await;
    let pending = tokio::spawn(closed.exec("sleep", &20_000u64).into_future());
    while closed.pending() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    within(closed.close()).await.unwrap();
    let at_close = within(pending).await.unwrap().unwrap();
    assert_eq!(at_close.end_reason(), Some(&EndReason::Closed));
    let after_close = within(closed.exec("square", &1u64)).await.unwrap();
    assert_eq!(after_close.end_reason(), Some(&EndReason::Closed));
    assert_eq!(closed.end_reason(), Some(EndReason::Closed));
    let err = within(closed.exec("square", &1u64).catch_all(true))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            MasterError::Task { end: Some(EndReason::Closed), error, .. } if error.kind == ErrorKind::Closed
        ),
        "{err}"
    );
    let err = within(closed.ping()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            MasterError::Unavailable {
                end: EndReason::Closed,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.end_reason(), Some(&EndReason::Closed));
    assert_eq!(
        err.to_string(),
        format!("slave #{} cannot be reached: it was closed", closed.id())
    );

    // Shut down: refused while it finishes.
    let shut = spawn_ready(&master, slave_options()).await;
    let pending = tokio::spawn(shut.exec("sleep", &500u64).into_future());
    while shut.pending() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shutting = tokio::spawn({
        let shut = shut.clone();
        async move { shut.shutdown().await }
    });
    while shut.is_connected() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = within(shut.exec("square", &1u64)).await.unwrap();
    assert_eq!(refused.end_reason(), Some(&EndReason::ShutDown));
    assert_eq!(refused.error().unwrap().kind, ErrorKind::Closed);
    let finished = within(pending).await.unwrap().unwrap();
    assert_eq!(finished.end_reason(), None, "it answered");
    within(shutting).await.unwrap().unwrap();

    // Killed: refused at once; the request in flight also says so.
    let killed = spawn_ready(&master, slave_options()).await;
    let in_flight = tokio::spawn(killed.exec("sleep", &60_000u64).into_future());
    while killed.pending() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    within(killed.kill(Signal::KILL)).await.unwrap();
    let refused = within(killed.exec("square", &1u64)).await.unwrap();
    assert_eq!(refused.end_reason(), Some(&EndReason::Killed(Signal::KILL)));
    assert_eq!(refused.error().unwrap().kind, ErrorKind::Closed);
    let in_flight = within(in_flight).await.unwrap().unwrap();
    assert_eq!(
        in_flight.end_reason(),
        Some(&EndReason::Killed(Signal::KILL))
    );
    assert_eq!(in_flight.error().unwrap().kind, ErrorKind::SlaveExited);

    // Broke the protocol.
    let broken = within(master.spawn(slave_options().env(MODE_ENV, "garbage").wait_ready(false)))
        .await
        .unwrap();
    let response = within(broken.exec("square", &2u64)).await.unwrap();
    assert!(
        matches!(response.end_reason(), Some(EndReason::ProtocolViolation(_))),
        "{:?}",
        response.end_reason()
    );
    within(broken.exited()).await;
    assert!(matches!(
        broken.end_reason(),
        Some(EndReason::ProtocolViolation(_))
    ));

    // Exited on its own.
    let exits = spawn_ready(&master, slave_options()).await;
    let exit = within(exits.exec("exit", &3i32)).await.unwrap();
    assert!(
        matches!(exit.end_reason(), Some(EndReason::Exited(status)) if status.code() == Some(3)),
        "{:?}",
        exit.end_reason()
    );

    // Answers and the slave's own errors carry none.
    let live = spawn_ready(&master, slave_options()).await;
    let failed = within(live.exec("fail", &"no".to_owned())).await.unwrap();
    assert!(failed.error().is_some() && failed.end_reason().is_none());
    assert_eq!(live.end_reason(), None);
}
