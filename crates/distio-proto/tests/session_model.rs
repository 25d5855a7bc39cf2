//! Random sequences of valid-shaped frames through both state machines: nothing panics,
//! the channel limit holds, and an honest master and server always agree.

mod common;

use bytes::Bytes;
use common::{MAX_CHANNELS, open_pair, session_frame};
use distio_proto::ProtoError;
use distio_proto::remote::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Something one side of an honest pair does.
#[derive(Clone, Debug)]
enum Step {
    Spawn,
    Route(Channel),
    Kill(Channel),
    Started(Channel),
    Failed(Channel),
    Output(Channel),
    RouteBack(Channel),
    Exit(Channel),
    /// The master acknowledges this many of the server's counted frames.
    AckToServer(u64),
    /// The server acknowledges this many of the master's.
    AckToMaster(u64),
    /// The link drops and the master resumes the session over a new connection.
    Resume,
}

fn step() -> impl Strategy<Value = Step> {
    let ch = 0u32..10;
    prop_oneof![
        3 => Just(Step::Spawn),
        1 => ch.clone().prop_map(Step::Route),
        1 => ch.clone().prop_map(Step::Kill),
        2 => ch.clone().prop_map(Step::Started),
        1 => ch.clone().prop_map(Step::Failed),
        1 => ch.clone().prop_map(Step::Output),
        1 => ch.clone().prop_map(Step::RouteBack),
        2 => ch.prop_map(Step::Exit),
        1 => any::<u64>().prop_map(Step::AckToServer),
        1 => any::<u64>().prop_map(Step::AckToMaster),
        1 => Just(Step::Resume),
    ]
}

/// Delivers `message` (if the sender produced one) to the master.
fn to_master(master: &mut ClientSession, sent: Result<Bytes, ProtoError>) {
    if let Ok(message) = sent {
        master
            .receive(&message)
            .unwrap_or_else(|err| panic!("an honest server broke the session: {err}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The master's side only sends what the server accepts, the server's side only what
    /// the master accepts, and both always count the same live channels.
    #[test]
    fn an_honest_pair_always_agrees(steps in vec(step(), 0..60)) {
        let (mut master, mut server) = open_pair();
        let token = ResumeToken { token: [3; 32], grace_ms: 30_000 };
        to_master(&mut master, server.resume_token(&token));
        for step in steps {
            match step {
                Step::Spawn => {
                    let (_, message) = master.spawn(Spawn::new(0, 1, "a")).unwrap();
                    match server.receive(&message).unwrap() {
                        ServerEvent::Spawn(_) => {}
                        ServerEvent::Refused { reply, .. } => to_master(&mut master, Ok(reply)),
                        other => panic!("{other:?}"),
                    }
                }
                Step::Route(ch) => {
                    if master.is_running(ch) {
                        let message = SessionCodec::new()
                            .encode(&SessionFrame::Routed { channel: ch, body: Bytes::new() })
                            .unwrap();
                        let got = server.receive(&message).unwrap();
                        prop_assert!(matches!(got, ServerEvent::Routed { .. }), "{got:?}");
                    }
                }
                Step::Kill(ch) => {
                    if let Some(message) = master.kill(ch, 9).unwrap() {
                        match server.receive(&message).unwrap() {
                            ServerEvent::Kill { .. } => {}
                            ServerEvent::Cancel { channel } => to_master(
                                &mut master,
                                server.spawn_failed(channel, SpawnFailure::Cancelled, String::new()),
                            ),
                            other => panic!("{other:?}"),
                        }
                    }
                }
                Step::Started(ch) => to_master(
                    &mut master,
                    server.spawned(Spawned { channel: ch, pid: 1, server_id: 1 }),
                ),
                Step::Failed(ch) => to_master(
                    &mut master,
                    server.spawn_failed(ch, SpawnFailure::StartFailed, String::new()),
                ),
                Step::Output(ch) => to_master(
                    &mut master,
                    server.output(&Output {
                        channel: ch,
                        stream: OutputStream::Stderr,
                        lost: 0,
                        data: Bytes::new(),
                    }),
                ),
                Step::RouteBack(ch) => {
                    if let Some(header) = server.routed_header(ch) {
                        to_master(&mut master, Ok(Bytes::copy_from_slice(&header)));
                    }
                }
                Step::Exit(ch) => to_master(
                    &mut master,
                    server.exited(Exited { channel: ch, code: None, signal: Some(9), cause: ExitCause::Killed }),
                ),
                // Counting is the I/O loops' business: the state machines pass any ack on.
                Step::AckToServer(n) => {
                    let got = server.receive(&master.ack(n).unwrap()).unwrap();
                    prop_assert!(matches!(got, ServerEvent::Acked { received } if received == n), "{got:?}");
                }
                Step::AckToMaster(n) => {
                    let got = master.receive(&server.ack(n).unwrap()).unwrap();
                    prop_assert!(matches!(got, ClientEvent::Acked { received } if received == n), "{got:?}");
                }
                Step::Resume => {
                    // The new connection's own state machine takes the resume and is done;
                    // the session's carries on and answers it.
                    let resume = master.resume(token.token, 1, 5).unwrap();
                    let mut fresh = ServerSession::new(SessionCodec::new(), MAX_CHANNELS);
                    let got = fresh.receive(&resume).unwrap();
                    prop_assert!(matches!(&got, ServerEvent::Resume(r) if r.token == token.token && r.received == 5), "{got:?}");
                    prop_assert!(fresh.is_closed());
                    let got = master.receive(&server.resumed(1, 6).unwrap()).unwrap();
                    prop_assert_eq!(got, ClientEvent::Resumed { instance: 1, received: 6 });
                }
            }
            prop_assert!(server.live_channels() <= MAX_CHANNELS);
            prop_assert_eq!(master.live_channels(), server.live_channels());
        }
    }

    /// Any frames at all, once the session is open: the server never panics, never holds
    /// more than its limit, and once it has refused a frame the session is over for it.
    #[test]
    fn a_server_fed_anything_keeps_its_limit(frames in vec(session_frame(), 0..40)) {
        let (_, mut server) = open_pair();
        let codec = SessionCodec::new();
        for frame in frames {
            let Ok(message) = codec.encode(&frame) else { continue };
            let got = server.receive(&message);
            prop_assert!(server.live_channels() <= MAX_CHANNELS);
            if let Ok(ServerEvent::Spawn(spawn)) = &got {
                // Answer some spawns so channels also reach running and end.
                if spawn.channel % 2 == 0 {
                    server.spawned(Spawned { channel: spawn.channel, pid: 1, server_id: 1 }).unwrap();
                }
            }
            if got.is_err() {
                break;
            }
        }
    }

    /// The same for the master's side, with a few of its own spawns out.
    #[test]
    fn a_master_fed_anything_never_panics(spawns in 0usize..6, frames in vec(session_frame(), 0..40)) {
        let (mut master, _) = open_pair();
        for _ in 0..spawns {
            master.spawn(Spawn::new(0, 1, "a")).unwrap();
        }
        let codec = SessionCodec::new();
        for frame in frames {
            let Ok(message) = codec.encode(&frame) else { continue };
            let before = master.live_channels();
            let got = master.receive(&message);
            prop_assert!(master.live_channels() <= before, "the server cannot open channels");
            if got.is_err() {
                break;
            }
        }
    }
}
