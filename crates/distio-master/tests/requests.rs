//! Requests to real slave processes: values, errors, broadcasts, ordering, concurrency,
//! pause, events.

mod common;

use common::{slave_options, spawn_ready, within};
use distio_master::prelude::*;
use distio_master::{ErrorKind, Master, Order, ResponseField, SpawnOptions, Target};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_returns_typed_values_with_response_details() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options().alias("one")).await;
    let response = within(slave.exec("square", &12u64)).await.unwrap();
    assert_eq!(response.value::<u64>().unwrap(), 144);
    assert_eq!(response.slave_id(), slave.id());
    assert_eq!(response.task(), "square");
    assert!(response.error().is_none());
    assert!(response.received_at() >= response.sent_at());
    let (id, alias): (u64, String) = within(slave.exec("whoami", &()))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!((id, alias.as_str()), (slave.id(), "one"));
    assert_eq!((slave.sent(), slave.received(), slave.pending()), (2, 2, 0));
    assert!(slave.task_names().contains(&"square".to_owned()));
    assert!(slave.pid().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_task_is_an_error_response_naming_slave_and_task() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let response = within(slave.exec("do some undefined task", &1234u64))
        .await
        .unwrap();
    let error = response.error().expect("an error response");
    assert_eq!(error.kind, ErrorKind::UnknownTask);
    assert_eq!(
        error.message,
        format!(
            "Slave #{} does not listen to task \"do some undefined task\"",
            slave.id()
        )
    );
    // Asking for the value turns it into an error.
    assert!(response.value::<u64>().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_and_panics_become_error_responses_and_the_slave_goes_on() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let failed = within(slave.exec("fail", "no good")).await.unwrap();
    assert_eq!(failed.error().unwrap().kind, ErrorKind::HandlerFailed);
    assert_eq!(failed.error().unwrap().message, "no good");
    let panicked = within(slave.exec("panic", &())).await.unwrap();
    assert_eq!(panicked.error().unwrap().kind, ErrorKind::HandlerPanicked);
    assert!(
        panicked
            .error()
            .unwrap()
            .message
            .contains("deliberate panic")
    );
    // Still serving.
    assert_eq!(
        within(slave.exec("square", &3u64))
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        9
    );
    // Input of the wrong type is a handler failure that names the task.
    let wrong = within(slave.exec("square", "three")).await.unwrap();
    assert_eq!(wrong.error().unwrap().kind, ErrorKind::HandlerFailed);
    assert!(
        wrong
            .error()
            .unwrap()
            .message
            .contains("\"square\" could not decode its input")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_five_and_address_by_id_alias_and_group() {
    let master = Master::new();
    let slaves = within(master.spawn_many(5, slave_options().alias("w").group("g")))
        .await
        .unwrap();
    let aliases: Vec<_> = slaves
        .iter()
        .map(|s| s.alias().unwrap().to_owned())
        .collect();
    assert_eq!(aliases, ["w", "w-1", "w-2", "w-3", "w-4"]);

    let responses = within(slaves.exec("whoami", &())).await.unwrap();
    assert_eq!(responses.len(), 5);
    let ids: Vec<u64> = responses
        .values::<(u64, String)>()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, slaves.ids(), "responses come back in slave order");

    let sums = within(master.tell(Target::group("g")).to("add", &(2i64, 3i64)))
        .await
        .unwrap();
    assert_eq!(sums.sum::<i64>().unwrap(), 25);
    assert_eq!(sums.product::<i64>().unwrap(), 5i64.pow(5));
    assert_eq!(sums.join_values::<i64>(", ").unwrap(), "5, 5, 5, 5, 5");
    assert!(sums.average_response_time().is_some());

    // A mix of targets, with duplicates sent to once.
    let mixed: Vec<Target> = vec![
        (&slaves[0]).into(),
        slaves[1].id().into(),
        "w-2".into(),
        "w".into(),
    ];
    let responses = within(master.tell(mixed).to("square", &4u64))
        .await
        .unwrap();
    assert_eq!(responses.len(), 3);

    let first = master.slave(slaves[0].id()).unwrap();
    assert_eq!(
        within(first.exec("square", &7u64))
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        49
    );

    // Unknown targets are an error, not a silent no-op.
    let missing = within(master.tell("nobody").to("square", &1u64))
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("alias \"nobody\""),
        "{missing}"
    );
    let none = within(master.tell(Target::group("empty")).to("square", &1u64))
        .await
        .unwrap_err();
    assert!(
        matches!(none, distio_master::MasterError::NoTargets),
        "{none}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_array_sorts_by_field_and_value() {
    let master = Master::new();
    let slaves = within(master.spawn_many(3, slave_options())).await.unwrap();
    let mut responses = within(slaves.exec("whoami", &())).await.unwrap();
    responses.sort_by(ResponseField::SlaveId, Order::Descending);
    let ids: Vec<u64> = responses.iter().map(|r| r.slave_id()).collect();
    let mut expected = slaves.ids();
    expected.reverse();
    assert_eq!(ids, expected);
    let mut squares = within(master.tell(&slaves).to("sleep", &5u64))
        .await
        .unwrap();
    squares.sort_by_value::<u64>(Order::Ascending).unwrap();
    assert_eq!(squares.values::<u64>().unwrap(), vec![5, 5, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_before_the_handshake_arrive_in_order() {
    let master = Master::new();
    let slave = within(master.spawn(slave_options())).await.unwrap();
    // Not waiting for ready: these are queued while the slave starts.
    let sends: Vec<_> = (0..200u64)
        .map(|n| slave.exec("record", &n).into_future())
        .collect();
    for result in within(futures_util::future::join_all(sends)).await {
        assert!(result.unwrap().is_ok());
    }
    let recorded: Vec<u64> = within(slave.exec("recorded", &()))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(recorded, (0..200).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_task_does_not_hold_up_a_fast_one() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let slow = tokio::spawn(slave.exec("sleep", &3000u64).into_future());
    let fast = within(slave.exec("square", &5u64)).await.unwrap();
    assert_eq!(fast.value::<u64>().unwrap(), 25);
    assert!(
        !slow.is_finished(),
        "the fast task answered while the slow one still runs"
    );
    assert_eq!(slave.pending(), 1);
    assert!(slave.is_busy());
    assert_eq!(
        within(slow).await.unwrap().unwrap().value::<u64>().unwrap(),
        3000
    );
    assert!(slave.is_idle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_slave_refuses_requests_until_resumed() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    within(slave.exec("pause_for", &1500u64)).await.unwrap();
    let refused = within(slave.exec("square", &2u64)).await.unwrap();
    assert_eq!(refused.error().unwrap().kind, ErrorKind::Paused);
    assert!(
        refused
            .error()
            .unwrap()
            .message
            .contains("not accepting messages")
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        within(slave.exec("square", &2u64))
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_subscribers_per_slave_and_per_array() {
    let master = Master::new();
    let slaves = within(master.spawn_many(2, slave_options())).await.unwrap();
    let mut one = slaves[0].subscribe("tick");
    let mut both = slaves.subscribe("tick");
    let mut other_name = slaves[0].subscribe("tock");
    within(slaves.exec("emit", &("tick".to_owned(), 3u32)))
        .await
        .unwrap();
    for expected in 0..3u32 {
        let event = within(one.recv()).await.unwrap();
        assert_eq!((event.slave, event.name.as_str()), (slaves[0].id(), "tick"));
        assert_eq!(event.decode::<u32>().unwrap(), expected);
    }
    let mut from = Vec::new();
    for _ in 0..6 {
        from.push(within(both.recv()).await.unwrap().slave);
    }
    from.sort();
    assert_eq!(
        from,
        [slaves[0].id(); 3]
            .into_iter()
            .chain([slaves[1].id(); 3])
            .collect::<Vec<_>>()
    );
    assert!(other_name.try_recv().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_sends_a_value_on_without_reencoding() {
    let master = Master::new();
    let slaves = within(master.spawn_many(2, slave_options())).await.unwrap();
    let first = within(slaves[0].exec("square", &3u64)).await.unwrap();
    let second = within(first.pipe("square").to(&slaves[1])).await.unwrap();
    assert_eq!(second.value::<u64>().unwrap(), 81);
    assert_eq!(second.slave_id(), slaves[1].id());
    let all = within(second.pipe("square").to_all(&slaves)).await.unwrap();
    assert_eq!(all.values::<u64>().unwrap(), vec![6561, 6561]);
    let failed = within(slaves[0].exec("fail", "x")).await.unwrap();
    assert!(within(failed.pipe("square").to(&slaves[1])).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_measures_a_round_trip() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    assert!(within(slave.ping()).await.unwrap() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_output_keeps_what_the_slave_printed() {
    let master = Master::new();
    let options = slave_options().output(distio_master::Output::Capture);
    let slave = spawn_ready(&master, options).await;
    within(slave.exec("print", "hello from the slave"))
        .await
        .unwrap();
    within(slave.close()).await.unwrap();
    let out = String::from_utf8(slave.captured_output().unwrap().stdout).unwrap();
    assert!(out.contains("hello from the slave"), "{out}");
    assert!(out.contains("close hook ran"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_too_large_for_a_frame_is_refused_before_sending() {
    let master = Master::with_codec(distio_proto::FrameCodec::with_max_frame_len(1024));
    // The slave's side uses the default limit; the master refuses before anything is sent.
    let slave = within(master.spawn(slave_options())).await.unwrap();
    let big = "x".repeat(4096);
    let err = within(slave.exec("echo", &big)).await.unwrap_err();
    assert!(
        matches!(err, distio_master::MasterError::TooLarge { .. }),
        "{err}"
    );
    assert_eq!(slave.sent(), 0);
    let _ = SpawnOptions::new("unused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_options_set_the_working_directory_and_prefix_output() {
    let master = Master::new();
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let options = slave_options()
        .current_dir(&dir)
        .alias("p")
        .output(distio_master::Output::Prefixed);
    let slave = spawn_ready(&master, options).await;
    let cwd: String = within(slave.exec("cwd", &()))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(std::path::PathBuf::from(cwd), dir);
    // Prefixed output is copied to this process's stdout; the slave keeps serving.
    within(slave.exec("print", "a line from slave p"))
        .await
        .unwrap();
    assert_eq!(
        within(slave.exec("square", &5u64))
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        25
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_in_flight_and_bursts_larger_than_the_socket_all_arrive() {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesUnordered;
    use std::future::IntoFuture;
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    // Many small requests at once: written in shared bursts, answered out of one buffer.
    let mut running: FuturesUnordered<_> = (0..5_000u64)
        .map(|n| slave.exec("square", &n).into_future())
        .collect();
    let mut sum = 0u64;
    while let Some(response) = within(running.next()).await {
        sum += response.unwrap().value::<u64>().unwrap();
    }
    assert_eq!(sum, (0..5_000u64).map(|n| n * n).sum::<u64>());
    // Large ones: the socket fills mid-burst and the link's writer finishes the writes.
    let text = "x".repeat(256 * 1024);
    let echoes: Vec<_> = (0..32)
        .map(|_| slave.exec("echo", &text).into_future())
        .collect();
    for response in within(futures_util::future::join_all(echoes)).await {
        assert_eq!(
            response.unwrap().value::<String>().unwrap().len(),
            text.len()
        );
    }
    assert_eq!(slave.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_dropped_in_flight_leave_nothing_behind() {
    use futures_util::FutureExt;
    use std::future::IntoFuture;
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    // Sent (polled once), then abandoned before the slave answers.
    let mut abandoned: Vec<_> = (0..200)
        .map(|_| slave.exec("sleep", &200u64).into_future())
        .collect();
    for request in &mut abandoned {
        assert!(request.now_or_never().is_none(), "sent, not yet answered");
    }
    assert_eq!(slave.pending(), 200);
    drop(abandoned);
    assert_eq!(slave.pending(), 0);
    // Their late answers are dropped; the link carries on.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = within(slave.exec("square", &3u64)).await.unwrap();
    assert_eq!(response.value::<u64>().unwrap(), 9);
    assert_eq!(slave.pending(), 0);
}
