//! The server end to end: real server on 127.0.0.1 port 0, real slave processes, a raw
//! session client.

mod common;

use common::{Client, process_gone, start, wait_gone, within};
use distio_proto::Frame;
use distio_proto::remote::{
    ClientEvent, CloseReason, ExitCause, OutputStream, SessionCodec, SessionFrame, Spawn,
    SpawnFailure,
};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn decode<T: serde::de::DeserializeOwned>(frame: Frame) -> T {
    match frame {
        Frame::Response(response) => response.outcome.expect("task ok").decode().unwrap(),
        other => panic!("expected a response, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_slave_answers_requests_and_knows_it_was_proxied() {
    let server = start(|b| b).await;
    let mut client = Client::connect(server.addr).await;
    let (channel, spawned) = client.ready_slave().await;
    client.request(channel, 1, "echo", &"hi".to_owned()).await;
    assert_eq!(decode::<String>(client.routed(channel).await), "hi");
    client.request(channel, 2, "proxied", &()).await;
    let (server_id, proxied): (Option<u64>, bool) = decode(client.routed(channel).await);
    assert_eq!(server_id, Some(spawned.server_id));
    assert!(proxied);
    client.close().await;
    assert!(
        wait_gone(spawned.pid).await,
        "the slave outlived its session"
    );
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawns_outside_the_root_or_not_runnable_are_refused() {
    let server = start(|b| b).await;
    let mut client = Client::connect(server.addr).await;
    let cases = [
        ("/bin/sh", SpawnFailure::OutsideRoot),
        ("../slave.sh", SpawnFailure::OutsideRoot),
        ("sub/../slave.sh", SpawnFailure::OutsideRoot),
        ("escape", SpawnFailure::OutsideRoot),
        ("missing.sh", SpawnFailure::NoSuchScript),
        ("plain.txt", SpawnFailure::NotExecutable),
        ("sub", SpawnFailure::NotExecutable),
    ];
    for (script, kind) in cases {
        let channel = client.spawn(script, &[]).await;
        match client.event_on(channel).await {
            ClientEvent::SpawnFailed(failed) => {
                assert_eq!(failed.kind, kind, "{script}: {}", failed.message);
                assert!(failed.message.contains(script), "{}", failed.message);
            }
            other => panic!("{script}: expected a refusal, got {other:?}"),
        }
    }
    // An executable file runs directly, its output relayed.
    let channel = client.spawn("run", &[]).await;
    client.spawned(channel).await;
    match client.event_on(channel).await {
        ClientEvent::Exited(exited) => assert_eq!(exited.code, Some(0)),
        other => panic!("unexpected {other:?}"),
    }
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_relayed_then_the_exit() {
    let server = start(|b| b).await;
    let mut client = Client::connect(server.addr).await;
    let channel = client.spawn("out.sh", &[]).await;
    client.spawned(channel).await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let exited = loop {
        match client.event().await {
            ClientEvent::Output(o) if o.channel == channel => match o.stream {
                OutputStream::Stdout => out.extend_from_slice(&o.data),
                OutputStream::Stderr => err.extend_from_slice(&o.data),
            },
            ClientEvent::Exited(e) if e.channel == channel => break e,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(out, b"hello\n");
    assert_eq!(err, b"oops\n");
    assert_eq!((exited.code, exited.cause), (Some(3), ExitCause::Exited));
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_dying_mid_request_is_reported_with_its_status() {
    let server = start(|b| b).await;
    let mut client = Client::connect(server.addr).await;
    let (channel, spawned) = client.ready_slave().await;
    client.request(channel, 1, "exit", &7i32).await;
    match client.event_on(channel).await {
        ClientEvent::Exited(exited) => {
            assert_eq!((exited.code, exited.cause), (Some(7), ExitCause::Exited));
        }
        other => panic!("expected the exit, got {other:?}"),
    }
    assert!(wait_gone(spawned.pid).await);
    // A kill of a running slave reports the signal.
    let (channel, _) = client.ready_slave().await;
    client.kill(channel, libc::SIGKILL).await;
    match client.event_on(channel).await {
        ClientEvent::Exited(exited) => {
            assert_eq!(exited.signal, Some(libc::SIGKILL));
            assert_eq!(exited.cause, ExitCause::Killed);
        }
        other => panic!("expected the exit, got {other:?}"),
    }
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_keeps_order_limit_and_timeout() {
    let server = start(|b| {
        b.max_concurrent_slaves(1)
            .queue_limit(2)
            .queue_timeout(Duration::from_secs(3))
    })
    .await;
    let mut client = Client::connect(server.addr).await;
    let a = client.spawn("sleep.sh", &[]).await;
    client.spawned(a).await;
    let b = client.spawn("sleep.sh", &[]).await;
    let c = client.spawn("sleep.sh", &[]).await;
    // Give b and c time to queue (in that order) before d finds the queue full.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = client.spawn("sleep.sh", &[]).await;
    match client.event_on(d).await {
        ClientEvent::SpawnFailed(f) => assert_eq!(f.kind, SpawnFailure::QueueFull),
        other => panic!("expected queue full, got {other:?}"),
    }
    client.kill(a, libc::SIGKILL).await;
    // a exits, then b (queued first) starts; c times out waiting behind b.
    let mut order = Vec::new();
    while order.len() < 3 {
        match client.event().await {
            ClientEvent::Exited(e) => order.push(("exited", e.channel)),
            ClientEvent::Spawned(s) => order.push(("spawned", s.channel)),
            ClientEvent::SpawnFailed(f) => {
                assert_eq!(f.kind, SpawnFailure::QueueTimeout, "{}", f.message);
                order.push(("timeout", f.channel));
            }
            _ => {}
        }
    }
    assert!(order.contains(&("exited", a)), "{order:?}");
    assert!(order.contains(&("spawned", b)), "{order:?}");
    assert!(order.contains(&("timeout", c)), "{order:?}");
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_spawn_whose_session_ended_never_starts() {
    let server = start(|b| b.max_concurrent_slaves(1).queue_limit(4)).await;
    let mut holder = Client::connect(server.addr).await;
    let a = holder.spawn("sleep.sh", &[]).await;
    holder.spawned(a).await;
    let mut gone = Client::connect(server.addr).await;
    let queued = gone.spawn("marker.sh", &["queued-started"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(gone);
    tokio::time::sleep(Duration::from_millis(500)).await;
    holder.kill(a, libc::SIGKILL).await;
    let mut next = Client::connect(server.addr).await;
    let c = next.spawn("marker.sh", &["next-started"]).await;
    let spawned = next.spawned(c).await;
    for _ in 0..50 {
        if server.root.join("next-started").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.root.join("next-started").exists());
    assert!(
        !server.root.join("queued-started").exists(),
        "channel {queued} started"
    );
    next.kill(c, libc::SIGKILL).await;
    assert!(wait_gone(spawned.pid).await);
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_past_the_lifetime_limit_is_ended_even_if_it_ignores_sigterm() {
    let server = start(|b| b.kill_slaves_after(Some(Duration::from_secs(1)))).await;
    let mut client = Client::connect(server.addr).await;
    let channel = client.spawn("stubborn.sh", &[]).await;
    let spawned = client.spawned(channel).await;
    match client.event_on(channel).await {
        ClientEvent::Exited(exited) => {
            assert_eq!(exited.cause, ExitCause::LifetimeLimit);
            assert_eq!(exited.signal, Some(libc::SIGKILL));
        }
        other => panic!("expected the exit, got {other:?}"),
    }
    assert!(wait_gone(spawned.pid).await);
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_session_ends_its_slaves_and_frees_their_places() {
    let server = start(|b| b.max_concurrent_slaves(2)).await;
    let mut client = Client::connect(server.addr).await;
    let (one, first) = client.ready_slave().await;
    client.request(one, 1, "sleep", &60_000u64).await;
    let two = client.spawn("stubborn.sh", &[]).await;
    let second = client.spawned(two).await;
    drop(client);
    assert!(
        wait_gone(first.pid).await,
        "a slave outlived its dropped session"
    );
    assert!(
        wait_gone(second.pid).await,
        "a stubborn slave outlived its dropped session"
    );
    // Both places are free again, and the server serves another session.
    let mut other = Client::connect(server.addr).await;
    let (channel, _) = other.ready_slave().await;
    let (channel2, _) = other.ready_slave().await;
    other
        .request(channel, 1, "echo", &"still here".to_owned())
        .await;
    assert_eq!(decode::<String>(other.routed(channel).await), "still here");
    other
        .request(channel2, 1, "echo", &"me too".to_owned())
        .await;
    assert_eq!(decode::<String>(other.routed(channel2).await), "me too");
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_each_exit_then_closes_and_leaves_no_slave() {
    let server = start(|b| b).await;
    let mut client = Client::connect(server.addr).await;
    let (_, first) = client.ready_slave().await;
    let channel = client.spawn("stubborn.sh", &[]).await;
    let second = client.spawned(channel).await;
    server.stop.shutdown();
    let mut exits = 0;
    loop {
        match client.event().await {
            ClientEvent::Exited(e) => {
                assert_eq!(e.cause, ExitCause::ServerStopping);
                exits += 1;
            }
            ClientEvent::Closing(c) => {
                assert_eq!(c.reason, CloseReason::ServerStopping);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(exits, 2);
    within(server.task).await.unwrap().unwrap();
    assert!(process_gone(first.pid) || wait_gone(first.pid).await);
    assert!(wait_gone(second.pid).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_bounded_when_the_client_stalls_and_losses_are_counted() {
    let server = start(|b| b.outbox_limit(64 * 1024)).await;
    let mut client = Client::connect(server.addr).await;
    let channel = client.spawn("spam.sh", &[]).await;
    let spawned = client.spawned(channel).await;
    // Stall: read nothing for a while (the heartbeat allows 10 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut lost = 0;
    for _ in 0..100_000 {
        if let ClientEvent::Output(o) = client.event().await {
            lost += o.lost;
            if lost > 0 {
                break;
            }
        }
    }
    assert!(lost > 0, "no line was reported lost");
    client.kill(channel, libc::SIGKILL).await;
    loop {
        if let ClientEvent::Exited(e) = client.event().await {
            assert_eq!(e.channel, channel);
            break;
        }
    }
    assert!(wait_gone(spawned.pid).await);
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_hurt_the_server_or_other_sessions() {
    let server = start(|b| b).await;
    let mut good = Client::connect(server.addr).await;
    let (channel, _) = good.ready_slave().await;
    let codec = SessionCodec::new();

    // Garbage, a text message, a spawn before open, random bytes after open.
    let spawn_first = codec
        .encode(&SessionFrame::Spawn(Spawn::new(1, 1, "slave.sh")))
        .unwrap();
    let hostile: Vec<Vec<Message>> = vec![
        vec![Message::Binary(vec![0xff; 3].into())],
        vec![Message::Text("hello".into())],
        vec![Message::Binary(spawn_first)],
        vec![
            Message::Binary(
                codec
                    .encode(&SessionFrame::Open(distio_proto::remote::Open::new("x")))
                    .unwrap(),
            ),
            Message::Binary(vec![11, 0, 0, 0, 9, 0, 0, 0, 1, 2, 3].into()),
        ],
        vec![
            Message::Binary(
                codec
                    .encode(&SessionFrame::Open(distio_proto::remote::Open::new("x")))
                    .unwrap(),
            ),
            Message::Binary(vec![8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff].into()),
        ],
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..20 {
        let mut messages = hostile[round % hostile.len()].clone();
        if round >= hostile.len() {
            let len = (seed % 64) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(seed as u8);
            }
            messages.push(Message::Binary(bytes.into()));
        }
        let mut ws = Client::connect_raw(server.addr).await;
        for message in messages {
            if ws.send(message).await.is_err() {
                break;
            }
        }
        // The server ends the session: the connection closes.
        let ended = within(async {
            while let Some(Ok(message)) = ws.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        });
        ended.await;
    }
    // The good session still works.
    good.request(channel, 9, "echo", &"unhurt".to_owned()).await;
    assert_eq!(decode::<String>(good.routed(channel).await), "unhurt");
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_master_loses_its_session_and_its_slaves() {
    let server = start(|b| b.heartbeat(Duration::from_millis(300), 3)).await;
    let mut client = Client::connect(server.addr).await;
    let channel = client.spawn("stubborn.sh", &[]).await;
    let spawned = client.spawned(channel).await;
    // Read nothing, answer no ping: the server gives up after 300 ms × 3.
    assert!(
        wait_gone(spawned.pid).await,
        "the slave outlived a silent session"
    );
    // The connection is gone. (A closing frame for the lost heartbeat was queued before
    // it, but the client, answering the queued pings, may hit the closed socket first.)
    loop {
        match within(client.ws.next()).await {
            Some(Ok(Message::Binary(bytes))) => {
                if let Ok(ClientEvent::Closing(closing)) = client.session.receive(&bytes) {
                    assert_eq!(closing.reason, CloseReason::HeartbeatLost);
                }
            }
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break,
        }
    }
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}
