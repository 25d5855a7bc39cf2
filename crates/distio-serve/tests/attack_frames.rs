//! Attacks after the session is open (or instead of opening it): hostile session frames,
//! text and fragment floods, the original's one-message crashes, spawn storms, a client
//! that never reads and an idle session. Each test proves the server closes what it must,
//! never panics, stays up and serves the next session.
//!
//! The in-process properties run 100 000 hostile cases over the session codec and the
//! server's session machine (debug build: about 15 s on two cores); `cargo xtask fuzz`
//! runs the long version in release mode.

mod common;
#[path = "../../distio-proto/tests/common/mod.rs"]
#[allow(unused_imports)]
mod proto_common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{Client, start, wait_gone, within};
use distio_proto::remote::{
    ClientEvent, CloseReason, ServerEvent, ServerSession, SessionCodec, SessionFrame, Spawn,
    SpawnFailure, Spawned, Welcome,
};
use distio_proto::{Frame, Request};
use futures_util::{SinkExt, StreamExt};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// The frame limit of the hostile properties' codec: small, so oversize is cheap to make.
const SMALL_MAX: usize = 512;

fn encode(frame: &SessionFrame) -> Vec<u8> {
    SessionCodec::new().encode(frame).unwrap().to_vec()
}

/// One hostile message: a well-formed frame, or one truncated, mutated, with a forged
/// length, oversized, or random bytes.
fn hostile_message() -> impl Strategy<Value = Vec<u8>> {
    let frame = proto_common::session_frame;
    prop_oneof![
        frame().prop_map(|f| encode(&f)),
        (frame(), any::<prop::sample::Index>()).prop_map(|(f, cut)| {
            let bytes = encode(&f);
            bytes[..cut.index(bytes.len())].to_vec()
        }),
        (
            frame(),
            vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
        )
            .prop_map(|(f, edits)| {
                let mut bytes = encode(&f);
                for (at, value) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = value;
                }
                bytes
            }),
        (frame(), any::<prop::sample::Index>(), any::<u64>()).prop_map(|(f, at, len)| {
            let mut bytes = encode(&f);
            if bytes.len() >= 12 {
                let i = 4 + at.index(bytes.len() - 12 + 1);
                bytes[i..i + 8].copy_from_slice(&len.to_le_bytes());
            }
            bytes
        }),
        (frame(), 1usize..64).prop_map(|(f, extra)| {
            // Padded past the small codec's limit.
            let mut bytes = encode(&f);
            bytes.resize(SMALL_MAX + 64 + extra, 0xa5);
            bytes
        }),
        vec(any::<u8>(), 0..96),
        (0u32..20, vec(any::<u8>(), 0..64)).prop_map(|(tag, rest)| {
            let mut m = BytesMut::new();
            m.put_u32_le(tag);
            m.put_slice(&rest);
            m.to_vec()
        }),
    ]
}

/// What the server's session loop does with each message, in process: the session
/// machine answers it as the server would (welcome, spawned, refusals), and the first
/// error ends the session with a protocol-violation closing frame. Never panics; once
/// closed, nothing more is taken.
fn serve_messages(codec: SessionCodec, messages: &[Vec<u8>]) {
    let mut server = ServerSession::new(codec, 4);
    let mut pid = 100;
    for message in messages {
        match server.receive(&Bytes::copy_from_slice(message)) {
            Ok(ServerEvent::Opened(_)) => {
                let _ = server.welcome(&Welcome::new("host", 1, 4));
            }
            Ok(ServerEvent::Spawn(spawn)) => {
                pid += 1;
                if pid % 2 == 0 {
                    let _ = server.spawned(Spawned {
                        channel: spawn.channel,
                        pid,
                        server_id: u64::from(pid),
                    });
                } else {
                    let _ =
                        server.spawn_failed(spawn.channel, SpawnFailure::QueueFull, "full".into());
                }
            }
            Ok(ServerEvent::Closing(_)) => return,
            Ok(_) => {}
            Err(err) => {
                let closing = server
                    .close(CloseReason::ProtocolViolation, &err.to_string())
                    .expect("a closing frame is always encodable");
                match SessionCodec::new().decode(&closing) {
                    Ok(SessionFrame::Closing(c)) => {
                        assert_eq!(c.reason, CloseReason::ProtocolViolation);
                    }
                    other => panic!("not a closing frame: {other:?}"),
                }
                assert!(server.is_closed());
                assert!(server.receive(&Bytes::copy_from_slice(message)).is_err());
                return;
            }
        }
    }
}

fn open_message() -> Vec<u8> {
    encode(&SessionFrame::Open(distio_proto::remote::Open::new(
        "attacker",
    )))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(50_000))]

    #[test]
    fn hostile_frames_after_open_end_the_session_with_a_reason_and_never_panic(
        messages in vec(hostile_message(), 1..6),
        small in any::<bool>(),
    ) {
        let codec = if small { SessionCodec::with_max_frame_len(SMALL_MAX) } else { SessionCodec::new() };
        let mut all = vec![open_message()];
        all.extend(messages);
        serve_messages(codec, &all);
    }

    #[test]
    fn hostile_first_messages_end_the_session_with_a_reason_and_never_panic(
        messages in vec(hostile_message(), 1..4),
    ) {
        serve_messages(SessionCodec::with_max_frame_len(SMALL_MAX), &messages);
    }
}

/// Hostile messages drawn from the strategy with a fixed seed.
fn sample(n: usize) -> Vec<Vec<u8>> {
    let mut runner = TestRunner::deterministic();
    let strategy = hostile_message();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Reads until the connection ends; the closing frame's reason, if one came.
async fn closing_reason(ws: &mut common::Ws) -> Option<CloseReason> {
    let mut reason = None;
    let codec = SessionCodec::new();
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Binary(bytes) => {
                if let Ok(SessionFrame::Closing(c)) = codec.decode(&bytes) {
                    reason = Some(c.reason);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    reason
}

/// The server still opens a session, starts a slave and answers through it.
async fn still_serves(addr: std::net::SocketAddr) {
    let mut client = Client::connect(addr).await;
    let (channel, spawned) = client.ready_slave().await;
    client
        .request(channel, 1, "echo", &"still here".to_owned())
        .await;
    match client.routed(channel).await {
        Frame::Response(r) => {
            assert_eq!(r.outcome.unwrap().decode::<String>().unwrap(), "still here");
        }
        other => panic!("expected a response, got {other:?}"),
    }
    client.close().await;
    assert!(wait_gone(spawned.pid).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_hostile_frames_over_real_websockets_end_their_sessions_not_the_server() {
    let server = start(|b| b.max_frame_len(SMALL_MAX)).await;
    let mut violations = 0;
    let messages = sample(300);
    for message in &messages {
        let mut client = Client::connect(server.addr).await;
        let _ = client
            .ws
            .send(Message::Binary(message.clone().into()))
            .await;
        // A message the server took is followed by a proper close: the session ends
        // either way.
        let close = SessionCodec::new()
            .encode(&SessionFrame::Closing(distio_proto::remote::Closing {
                reason: CloseReason::Done,
                message: "bye".into(),
            }))
            .unwrap();
        let _ = client.ws.send(Message::Binary(close)).await;
        if within(closing_reason(&mut client.ws)).await == Some(CloseReason::ProtocolViolation) {
            violations += 1;
        }
    }
    assert!(violations > messages.len() / 2, "{violations} violations");
    assert!(!server.task.is_finished());
    still_serves(server.addr).await;
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_after_open_ends_the_session_and_its_slave() {
    let server = start(|b| b).await;
    let mut client = Client::connect(server.addr).await;
    let channel = client.spawn("sleep.sh", &[]).await;
    let spawned = client.spawned(channel).await;
    client
        .ws
        .send(Message::Text("{\"spawn\":1}".into()))
        .await
        .unwrap();
    assert_eq!(
        within(closing_reason(&mut client.ws)).await,
        Some(CloseReason::ProtocolViolation)
    );
    assert!(wait_gone(spawned.pid).await);
    still_serves(server.addr).await;
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_tiny_fragments_is_cut_at_the_message_limit() {
    let server = start(|b| b.max_frame_len(4096)).await;
    let mut client = Client::connect(server.addr).await;
    // One binary message started and never finished: 100 000 one-byte continuation
    // frames, far past the message limit (the frame limit plus a header).
    let mut sent = 0;
    let first = WsFrame::message(vec![11u8], OpCode::Data(Data::Binary), false);
    if client.ws.send(Message::Frame(first)).await.is_ok() {
        for _ in 0..100_000 {
            let piece = WsFrame::message(vec![0u8], OpCode::Data(Data::Continue), false);
            if client.ws.feed(Message::Frame(piece)).await.is_err() {
                break;
            }
            sent += 1;
            if sent % 1024 == 0 && client.ws.flush().await.is_err() {
                break;
            }
        }
    }
    let _ = client.ws.flush().await;
    // The server drops the connection (the message is too long): reading ends.
    within(async { while let Some(Ok(_)) = client.ws.next().await {} }).await;
    still_serves(server.addr).await;
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originals_one_message_crashes_are_harmless() {
    let server = start(|b| b.max_concurrent_slaves(1)).await;
    let codec = SessionCodec::new();

    // A request before any spawn: a routed frame on a channel that was never opened.
    let mut client = Client::connect(server.addr).await;
    let request = Frame::Request(Request {
        id: 1,
        task: "echo".into(),
        payload: distio_proto::Payload::encode(&"x").unwrap(),
        meta: distio_proto::Metadata::new(),
    });
    let mut buf = BytesMut::new();
    codec.encode_routed(1, &request, &mut buf).unwrap();
    client.send(buf.freeze()).await;
    let mut buf = BytesMut::new();
    codec.encode_routed(u32::MAX, &request, &mut buf).unwrap();
    client.send(buf.freeze()).await;
    drop(client);

    // Kill, then close at once.
    let mut client = Client::connect(server.addr).await;
    let (channel, spawned) = client.ready_slave().await;
    client.kill(channel, libc::SIGKILL).await;
    client.close().await;
    assert!(wait_gone(spawned.pid).await);

    // A disconnect while a spawn is queued: the queued one never starts.
    let mut client = Client::connect(server.addr).await;
    let first = client.spawn("sleep.sh", &[]).await;
    let running = client.spawned(first).await;
    let marker = server.root.join("queued-marker");
    let _queued = client.spawn("marker.sh", &[marker.to_str().unwrap()]).await;
    drop(client);
    assert!(wait_gone(running.pid).await);

    // Missing and absurd fields: a bare tag, a spawn cut after its channel, a huge
    // channel id on a spawn, a length of 2^64 - 1 where a string's length sits.
    let mut spawn = Spawn::new(u32::MAX, u64::MAX, "slave.sh");
    spawn.args = vec!["a".repeat(10)];
    let huge_channel = codec.encode(&SessionFrame::Spawn(spawn.clone())).unwrap();
    let mut absurd_len = huge_channel.to_vec();
    absurd_len[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut absurd_slave = huge_channel.to_vec();
    absurd_slave[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    for message in [
        6u32.to_le_bytes().to_vec(),
        huge_channel[..8].to_vec(),
        huge_channel.to_vec(),
        absurd_len,
        absurd_slave,
        vec![11, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
    ] {
        let mut client = Client::connect(server.addr).await;
        client.send(message.into()).await;
        // Whatever the server took, the master's close ends the session.
        let _ = client
            .ws
            .send(Message::Binary(
                codec
                    .encode(&SessionFrame::Closing(distio_proto::remote::Closing {
                        reason: CloseReason::Done,
                        message: String::new(),
                    }))
                    .unwrap(),
            ))
            .await;
        let reason = within(closing_reason(&mut client.ws)).await;
        assert!(
            matches!(reason, Some(CloseReason::ProtocolViolation) | None),
            "{reason:?}"
        );
    }
    assert!(
        !marker.exists(),
        "a spawn queued by a dropped session started"
    );
    still_serves(server.addr).await;
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_storms_past_every_cap_are_refused_and_the_server_stays_responsive() {
    let server = start(|b| {
        b.max_concurrent_slaves(2)
            .queue_limit(2)
            .queue_timeout(Duration::from_millis(500))
            .max_channels_per_session(6)
    })
    .await;
    let codec = SessionCodec::new();
    let mut client = Client::connect(server.addr).await;
    // Sent raw (the client session would refuse past its own limits): 40 spawns at once.
    let storm = 40u32;
    for channel in 1..=storm {
        let message = codec
            .encode(&SessionFrame::Spawn(Spawn::new(channel, 1, "sleep.sh")))
            .unwrap();
        if client.ws.send(Message::Binary(message)).await.is_err() {
            break;
        }
    }
    let mut spawned = Vec::new();
    let mut refused = std::collections::BTreeMap::<String, u32>::new();
    let mut violation = false;
    // Read what comes back until every channel is answered or the session ends.
    within(async {
        while spawned.len() + (refused.values().sum::<u32>() as usize) < storm as usize {
            let Some(Ok(message)) = client.ws.next().await else {
                break;
            };
            let Message::Binary(bytes) = message else {
                continue;
            };
            match codec.decode(&bytes) {
                Ok(SessionFrame::Spawned(s)) => spawned.push(s.pid),
                Ok(SessionFrame::SpawnFailed(f)) => {
                    *refused.entry(format!("{:?}", f.kind)).or_default() += 1;
                }
                Ok(SessionFrame::Closing(c)) => {
                    violation = c.reason == CloseReason::ProtocolViolation;
                    break;
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(spawned.len() <= 2, "{spawned:?}");
    // The first spawns past the channel cap are refused; nothing is left unanswered or
    // the session was ended for breaking the channel limit.
    assert!(violation || !refused.is_empty(), "{refused:?} {spawned:?}");
    for failure in refused.keys() {
        assert!(
            ["QueueFull", "QueueTimeout", "Invalid"]
                .iter()
                .any(|k| failure.contains(k)),
            "{refused:?}"
        );
    }
    drop(client);
    for pid in spawned {
        assert!(wait_gone(pid).await);
    }
    still_serves(server.addr).await;
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_and_its_slaves_cleaned_up() {
    let server = start(|b| {
        b.outbox_limit(16 * 1024)
            .client_stall_timeout(Duration::from_secs(1))
            // The heartbeat would end it much later: the stall is what cuts it.
            .heartbeat(Duration::from_secs(30), 3)
    })
    .await;
    let mut client = Client::connect(server.addr).await;
    let (_, slave) = client.ready_slave().await;
    let spam = client.spawn("spam.sh", &[]).await;
    let spam = client.spawned(spam).await;
    // From now on read nothing while the slave's output piles up; keep pinging, so the
    // heartbeat sees a live client.
    let talk = async {
        for _ in 0..600 {
            let sent = tokio::time::timeout(
                Duration::from_secs(5),
                client.ws.send(Message::Ping(Bytes::new())),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let cut = async {
        assert!(
            wait_gone(spam.pid).await,
            "the spamming slave outlived its stalled session"
        );
        assert!(
            wait_gone(slave.pid).await,
            "the slave outlived its stalled session"
        );
    };
    tokio::select! {
        () = cut => {}
        () = talk => {
            assert!(wait_gone(spam.pid).await && wait_gone(slave.pid).await);
        }
    }
    still_serves(server.addr).await;
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_closed_with_a_reason_but_a_busy_one_is_not() {
    let server = start(|b| b.idle_session_timeout(Some(Duration::from_millis(800)))).await;
    // A session with a slave stays, however quiet.
    let mut busy = Client::connect(server.addr).await;
    let channel = busy.spawn("sleep.sh", &[]).await;
    let spawned = busy.spawned(channel).await;
    // A session with nothing is closed.
    let mut idle = Client::connect(server.addr).await;
    match idle.event().await {
        ClientEvent::Closing(c) => {
            assert_eq!(c.reason, CloseReason::Done);
            assert!(c.message.contains("idle"), "{}", c.message);
        }
        other => panic!("expected closing, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    busy.kill(channel, libc::SIGKILL).await;
    match busy.event_on(channel).await {
        ClientEvent::Exited(e) => assert_eq!(e.channel, channel),
        other => panic!("the busy session should still be open: {other:?}"),
    }
    assert!(wait_gone(spawned.pid).await);
    // Without its slave it is idle too, and closed.
    match busy.event().await {
        ClientEvent::Closing(c) => assert_eq!(c.reason, CloseReason::Done),
        other => panic!("expected closing, got {other:?}"),
    }
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

/// How many cases each decoder gets in the long run (`cargo xtask fuzz --cases N`).
fn fuzz_cases() -> u32 {
    std::env::var("DISTIO_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

/// Runs `test` on `cases` values of `strategy`, printing the count and the time taken.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value)) {
    let cases = fuzz_cases();
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let started = std::time::Instant::now();
    let result = TestRunner::new(config).run(&strategy, |value| {
        test(value);
        Ok(())
    });
    let elapsed = started.elapsed();
    println!(
        "fuzz {name}: {cases} cases in {:.1}s: {}",
        elapsed.as_secs_f64(),
        match &result {
            Ok(()) => "no finding".to_owned(),
            Err(err) => format!("FINDING: {err}"),
        }
    );
    if let Err(err) = result {
        panic!("{name}: {err}");
    }
}

/// The long run of every decoder the server exposes, in release:
/// `cargo xtask fuzz [--cases N]` (1 000 000 cases each by default).
#[test]
#[ignore = "long: run by `cargo xtask fuzz`"]
fn fuzz_every_decoder_the_server_exposes() {
    use distio_proto::FrameCodec;
    use tokio_util::codec::Decoder;

    // Session messages from a master: the codec and the server's session machine.
    fuzz(
        "session frames (SessionCodec + ServerSession)",
        (vec(hostile_message(), 1..6), any::<bool>()),
        |(messages, opened)| {
            let mut all = if opened {
                vec![open_message()]
            } else {
                Vec::new()
            };
            all.extend(messages);
            serve_messages(SessionCodec::with_max_frame_len(SMALL_MAX), &all);
        },
    );

    // Frames from a slave's socket: the stream decoder, fed in chunks.
    let slave_stream = (
        vec(proto_common::frame(), 1..4),
        vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
        1usize..64,
    )
        .prop_map(|(frames, edits, cut, chunk)| {
            let mut bytes = proto_common::encode_all(&frames).to_vec();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            bytes.truncate(cut.index(bytes.len() + 1).max(1));
            (bytes, chunk)
        });
    fuzz(
        "slave frames (FrameCodec)",
        slave_stream,
        |(bytes, chunk)| {
            let mut codec = FrameCodec::with_max_frame_len(1 << 16);
            let mut buf = BytesMut::new();
            'feed: for piece in bytes.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        },
    );

    // The Authorization header.
    let header = prop_oneof![
        vec(any::<u8>(), 0..128),
        (
            vec(any::<u8>(), 0..48),
            vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)
        )
            .prop_map(|(raw, edits)| {
                use base64::Engine;
                let mut h = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
                .into_bytes();
                for (at, value) in edits {
                    let i = at.index(h.len());
                    h[i] = value;
                }
                h
            }),
    ];
    let credentials =
        distio_serve::Credentials::new(&distio_serve::BasicAuth::with_password("ops", "pa:ss"))
            .unwrap();
    fuzz("Authorization: Basic", header, |h| {
        if let Ok((user, password)) = distio_serve::auth::parse_basic_authorization(&h) {
            assert!(
                !credentials.verify(&user, &password) || (user == b"ops" && password == b"pa:ss")
            );
        }
    });

    // Stored password hashes and the configuration file.
    let valid = "$pbkdf2-sha256$i=600000$BwcHBwcHBwcHBwcHBwcHBw$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let hash_text = (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        ".{0,8}",
    )
        .prop_map(move |(at, cut, insert)| {
            let mut s = valid.to_owned();
            let i = at.index(s.len());
            let i = (0..=i).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            s.insert_str(i, &insert);
            let c = cut.index(s.len() + 1);
            let c = (0..=c).rev().find(|&c| s.is_char_boundary(c)).unwrap_or(0);
            s.truncate(c);
            s
        });
    fuzz("password hash strings", hash_text, |text| {
        let _ = distio_serve::auth::PasswordHash::parse(&text);
    });
    let config_text = (
        proptest::sample::select(vec![
            "port = 4000\n",
            "queue_timeout = \"1min\"\n",
            "kill_slaves_after = \"off\"\n",
            "authorized_ips = [\"10.0.0.0/8\"]\n",
            "[basic_auth]\nusername = \"ops\"\npassword = \"x\"\n",
            "[interpreters]\npy = \"python3\"\n",
            "log_level = 3\n",
            "max_frame_len = 99999999999999999999\n",
        ]),
        vec((any::<prop::sample::Index>(), any::<char>()), 0..4),
    )
        .prop_map(|(base, edits)| {
            let mut s: Vec<char> = base.chars().collect();
            for (at, c) in edits {
                let i = at.index(s.len());
                s[i] = c;
            }
            s.into_iter().collect::<String>()
        });
    fuzz("configuration files (TOML)", config_text, |text| {
        let _ = toml::from_str::<distio_serve::ServeConfig>(&text);
    });
}
