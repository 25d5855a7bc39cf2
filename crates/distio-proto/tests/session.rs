//! The session rules, byte by byte: both state machines driven through whole sessions,
//! every violation, stale frames, cancels and the channel limit.

mod common;

use bytes::{Bytes, BytesMut};
use common::{busy_pair, open_pair};
use distio_proto::remote::*;
use distio_proto::{Control, Frame, ProtoError};

fn enc(f: SessionFrame) -> Bytes {
    SessionCodec::new().encode(&f).unwrap()
}

fn violation<T: std::fmt::Debug>(r: Result<T, ProtoError>) -> SessionViolation {
    match r {
        Err(ProtoError::Session(v)) => v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

fn golden(name: &str) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/");
    std::fs::read(format!("{dir}{name}.bin")).unwrap()
}

fn spawn(ch: Channel) -> Bytes {
    enc(SessionFrame::Spawn(Spawn::new(ch, 1, "s.sh")))
}
fn spawned(ch: Channel) -> Bytes {
    enc(SessionFrame::Spawned(Spawned {
        channel: ch,
        pid: 1,
        server_id: 1,
    }))
}
fn failed(ch: Channel) -> Bytes {
    enc(SessionFrame::SpawnFailed(SpawnFailed {
        channel: ch,
        kind: SpawnFailure::Invalid,
        message: String::new(),
    }))
}
fn routed(ch: Channel) -> Bytes {
    enc(SessionFrame::Routed {
        channel: ch,
        body: Bytes::from_static(&[4, 0, 0, 0, 0, 0, 0, 0]),
    })
}
fn output(ch: Channel) -> Bytes {
    enc(SessionFrame::Output(Output {
        channel: ch,
        stream: OutputStream::Stdout,
        lost: 0,
        data: Bytes::from_static(b"x\n"),
    }))
}
fn kill(ch: Channel) -> Bytes {
    enc(SessionFrame::Kill(Kill {
        channel: ch,
        signal: 9,
    }))
}
fn exited(ch: Channel) -> Bytes {
    enc(SessionFrame::Exited(exit(ch)))
}
fn exit(ch: Channel) -> Exited {
    Exited {
        channel: ch,
        code: Some(0),
        signal: None,
        cause: ExitCause::Exited,
    }
}
fn open() -> Bytes {
    enc(SessionFrame::Open(Open::new("t")))
}
fn welcome() -> Bytes {
    enc(SessionFrame::Welcome(Welcome::new("h", 1, 1)))
}
fn closing() -> Bytes {
    enc(SessionFrame::Closing(Closing {
        reason: CloseReason::Done,
        message: String::new(),
    }))
}

/// Every kind of frame, each naming channel 2 where it names one.
fn every_kind() -> Vec<(&'static str, Bytes)> {
    vec![
        ("open", open()),
        ("welcome", welcome()),
        ("spawn", spawn(2)),
        ("spawned", spawned(2)),
        ("spawn-failed", failed(2)),
        ("routed", routed(2)),
        ("output", output(2)),
        ("kill", kill(2)),
        ("exited", exited(2)),
        ("closing", closing()),
    ]
}

#[test]
fn a_whole_session_byte_by_byte() {
    let mut master = ClientSession::new(SessionCodec::new());
    let mut server = ServerSession::new(SessionCodec::new(), 8);

    let open = master.open("ci").unwrap();
    assert_eq!(
        &open[..],
        golden("session_open"),
        "the open frame of the docs"
    );
    let ServerEvent::Opened(asked) = server.receive(&open).unwrap() else {
        panic!()
    };
    assert_eq!(asked.client, "ci");
    let welcome = server.welcome(&Welcome::new("host-a", 9, 16)).unwrap();
    assert!(!master.is_open());
    assert!(
        matches!(master.receive(&welcome).unwrap(), ClientEvent::Welcomed(w) if w.capacity == 16)
    );
    assert!(master.is_open());

    // Spawn: the master picks channel 1 whatever the spawn said.
    let (channel, message) = master.spawn(Spawn::new(77, 7, "square.py")).unwrap();
    assert_eq!(channel, 1);
    assert_eq!(&message[..8], [8, 0, 0, 0, 1, 0, 0, 0]);
    let ServerEvent::Spawn(asked) = server.receive(&message).unwrap() else {
        panic!()
    };
    assert_eq!(
        (asked.channel, asked.slave, asked.script.as_str()),
        (1, 7, "square.py")
    );
    assert!(!master.is_running(1));
    assert_eq!(server.routed_header(1), None, "not running yet");
    let message = server
        .spawned(Spawned {
            channel: 1,
            pid: 4242,
            server_id: 40,
        })
        .unwrap();
    assert!(matches!(master.receive(&message).unwrap(), ClientEvent::Spawned(s) if s.pid == 4242));
    assert!(master.is_running(1));

    // Routed, master → server: the body reaches the server as the slave link carries it.
    let ping = Frame::Control(Control::Ping(0xAB));
    let mut message = BytesMut::new();
    master
        .codec()
        .encode_routed(1, &ping, &mut message)
        .unwrap();
    let message = message.freeze();
    assert_eq!(&message[..], golden("session_routed"));
    let ServerEvent::Routed { channel, body } = server.receive(&message).unwrap() else {
        panic!()
    };
    assert_eq!(channel, 1);
    assert_eq!(
        body.as_ptr(),
        message[8..].as_ptr(),
        "relayed without a copy"
    );
    assert_eq!(
        server.codec().frame_codec().decode_body(&body).unwrap(),
        ping
    );

    // Routed, server → master: the server puts the header before the slave's body.
    let header = server.routed_header(1).unwrap();
    let mut message = BytesMut::from(&header[..]);
    message.extend_from_slice(&body);
    let message = message.freeze();
    assert!(matches!(
        master.receive(&message).unwrap(),
        ClientEvent::Routed { channel: 1, body: b } if b == body
    ));

    let line = Output {
        channel: 1,
        stream: OutputStream::Stdout,
        lost: 2,
        data: Bytes::from_static(b"hi\n"),
    };
    let message = server.output(&line).unwrap();
    assert_eq!(&message[..], golden("session_output_stdout"));
    assert_eq!(master.receive(&message).unwrap(), ClientEvent::Output(line));

    let message = master.kill(1, 15).unwrap().expect("running");
    assert_eq!(&message[..], golden("session_kill"));
    assert_eq!(
        server.receive(&message).unwrap(),
        ServerEvent::Kill {
            channel: 1,
            signal: 15
        }
    );
    let end = Exited {
        channel: 1,
        code: None,
        signal: Some(15),
        cause: ExitCause::Killed,
    };
    let message = server.exited(end).unwrap();
    assert_eq!(&message[..], golden("session_exited_killed"));
    assert_eq!(master.receive(&message).unwrap(), ClientEvent::Exited(end));
    assert_eq!((master.live_channels(), server.live_channels()), (0, 0));
    assert_eq!(master.kill(1, 9).unwrap(), None, "nothing left to signal");

    let message = master.close(CloseReason::Done, "done").unwrap();
    assert_eq!(&message[..], golden("session_closing_done"));
    assert!(
        matches!(server.receive(&message).unwrap(), ServerEvent::Closing(c) if c.reason == CloseReason::Done)
    );
    assert!(server.is_closed());
    assert!(!master.is_open());
}

#[test]
fn the_handshake_comes_first() {
    for (kind, message) in every_kind() {
        let mut server = ServerSession::new(SessionCodec::new(), 4);
        if kind != "open" {
            assert_eq!(
                violation(server.receive(&message)),
                SessionViolation::HandshakeFirst {
                    expected: "open",
                    found: kind
                }
            );
        }
        let mut master = ClientSession::new(SessionCodec::new());
        master.open("t").unwrap();
        if kind != "welcome" && kind != "closing" {
            assert_eq!(
                violation(master.receive(&message)),
                SessionViolation::HandshakeFirst {
                    expected: "welcome",
                    found: kind
                }
            );
        }
    }
    // Nor may the master ask for anything before the welcome.
    let mut master = ClientSession::new(SessionCodec::new());
    master.open("t").unwrap();
    assert_eq!(
        violation(master.spawn(Spawn::new(0, 1, "a"))),
        SessionViolation::HandshakeFirst {
            expected: "welcome",
            found: "spawn"
        }
    );
}

#[test]
fn the_master_waits_for_the_welcome_before_anything_else() {
    // Open received, welcome not sent yet: a spawn, routed frame or kill is early.
    for (kind, message) in [
        ("spawn", spawn(1)),
        ("routed", routed(1)),
        ("kill", kill(1)),
    ] {
        let mut server = ServerSession::new(SessionCodec::new(), 4);
        server.receive(&open()).unwrap();
        assert_eq!(
            violation(server.receive(&message)),
            SessionViolation::HandshakeFirst {
                expected: "welcome",
                found: kind
            }
        );
    }
    let mut server = ServerSession::new(SessionCodec::new(), 4);
    server.receive(&open()).unwrap();
    assert!(matches!(
        server.receive(&closing()).unwrap(),
        ServerEvent::Closing(_)
    ));
}

#[test]
fn the_handshake_happens_once() {
    let (mut master, mut server) = open_pair();
    assert_eq!(
        violation(server.receive(&open())),
        SessionViolation::RepeatedHandshake { kind: "open" }
    );
    assert_eq!(
        violation(master.receive(&welcome())),
        SessionViolation::RepeatedHandshake { kind: "welcome" }
    );
    assert_eq!(
        violation(master.open("again")),
        SessionViolation::RepeatedHandshake { kind: "open" }
    );
    assert_eq!(
        violation(server.welcome(&Welcome::new("h", 1, 1))),
        SessionViolation::RepeatedHandshake { kind: "welcome" }
    );
}

#[test]
fn a_bad_magic_or_version_ends_the_handshake() {
    let bad = |magic: [u8; 4], version: u16| {
        let open = Open {
            magic,
            version,
            client: "x".into(),
        };
        let welcome = Welcome {
            magic,
            version,
            ..Welcome::new("h", 1, 1)
        };
        let mut server = ServerSession::new(SessionCodec::new(), 4);
        let mut master = ClientSession::new(SessionCodec::new());
        master.open("t").unwrap();
        [
            server.receive(&enc(SessionFrame::Open(open))).unwrap_err(),
            master
                .receive(&enc(SessionFrame::Welcome(welcome)))
                .unwrap_err(),
        ]
    };
    for err in bad(*b"JSON", 1) {
        assert!(matches!(err, ProtoError::BadMagic { .. }), "{err}");
    }
    // Version 1: a master or server from before the status report and resuming.
    for err in bad(distio_proto::MAGIC, 1) {
        assert!(
            matches!(err, ProtoError::UnsupportedVersion { found: 1, .. }),
            "{err}"
        );
    }
}

#[test]
fn each_frame_travels_one_way() {
    let (mut master, mut server) = busy_pair();
    for kind in ["welcome", "spawned", "spawn-failed", "output", "exited"] {
        let message = every_kind()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .unwrap()
            .1;
        assert_eq!(
            violation(server.receive(&message)),
            SessionViolation::WrongDirection {
                kind,
                from: "master"
            }
        );
    }
    for (kind, message) in [("open", open()), ("spawn", spawn(9)), ("kill", kill(2))] {
        assert_eq!(
            violation(master.receive(&message)),
            SessionViolation::WrongDirection {
                kind,
                from: "server"
            }
        );
    }
}

#[test]
fn channels_start_at_one_and_only_increase() {
    let (_, mut server) = open_pair();
    assert_eq!(
        violation(server.receive(&spawn(0))),
        SessionViolation::ChannelNotIncreasing {
            channel: 0,
            last: 0
        }
    );
    let (_, mut server) = open_pair();
    assert!(matches!(
        server.receive(&spawn(5)).unwrap(),
        ServerEvent::Spawn(_)
    ));
    for again in [5, 4, 1] {
        let (_, mut server) = open_pair();
        server.receive(&spawn(5)).unwrap();
        assert_eq!(
            violation(server.receive(&spawn(again))),
            SessionViolation::ChannelNotIncreasing {
                channel: again,
                last: 5
            }
        );
    }
    // The master's side numbers them 1, 2, 3 … whatever the spawn said.
    let (mut master, _) = open_pair();
    let channels: Vec<Channel> = (0..3)
        .map(|_| master.spawn(Spawn::new(99, 1, "a")).unwrap().0)
        .collect();
    assert_eq!(channels, [1, 2, 3]);
}

#[test]
fn frames_for_channels_never_opened_are_violations() {
    let (mut master, mut server) = busy_pair();
    for (kind, message) in [
        ("routed", routed(9)),
        ("kill", kill(9)),
        ("routed", routed(0)),
    ] {
        let channel = if message == routed(0) { 0 } else { 9 };
        assert_eq!(
            violation(server.receive(&message)),
            SessionViolation::UnknownChannel { channel, kind }
        );
    }
    for (kind, message) in [
        ("spawned", spawned(9)),
        ("spawn-failed", failed(9)),
        ("routed", routed(9)),
        ("output", output(9)),
        ("exited", exited(9)),
    ] {
        let mut master_copy = busy_pair().0;
        assert_eq!(
            violation(master_copy.receive(&message)),
            SessionViolation::UnknownChannel { channel: 9, kind }
        );
    }
    assert_eq!(master.kill(9, 9).unwrap(), None);
}

#[test]
fn frames_at_the_wrong_stage_are_violations() {
    // In a busy pair channel 1 has ended, 2 is running and 3 is starting.
    let stage = |channel, kind, stage| SessionViolation::WrongStage {
        channel,
        kind,
        stage,
    };
    let cases: Vec<(Bytes, SessionViolation)> = vec![
        (spawned(2), stage(2, "spawned", "running")),
        (spawned(1), stage(1, "spawned", "ended")),
        (failed(2), stage(2, "spawn-failed", "running")),
        (failed(1), stage(1, "spawn-failed", "ended")),
        (exited(3), stage(3, "exited", "starting")),
        (exited(1), stage(1, "exited", "ended")),
        (routed(3), stage(3, "routed", "starting")),
        (routed(1), stage(1, "routed", "ended")),
        (output(3), stage(3, "output", "starting")),
        (output(1), stage(1, "output", "ended")),
    ];
    for (message, expected) in cases {
        let (mut master, _) = busy_pair();
        assert_eq!(violation(master.receive(&message)), expected);
    }
    let (_, mut server) = busy_pair();
    assert_eq!(
        violation(server.receive(&routed(3))),
        stage(3, "routed", "starting")
    );
    // The server's own calls are held to the same stages.
    let (_, mut server) = busy_pair();
    assert_eq!(
        violation(server.exited(exit(3))),
        stage(3, "exited", "starting")
    );
    assert_eq!(
        violation(server.spawned(Spawned {
            channel: 2,
            pid: 1,
            server_id: 1
        })),
        stage(2, "spawned", "running")
    );
    assert_eq!(server.routed_header(3), None);
    assert_eq!(server.routed_header(1), None);
}

#[test]
fn nothing_comes_after_closing() {
    for (kind, message) in every_kind() {
        let (mut master, mut server) = busy_pair();
        server.receive(&closing()).unwrap();
        assert_eq!(server.live_channels(), 0, "closing ends every channel");
        assert_eq!(
            violation(server.receive(&message)),
            SessionViolation::AfterClose { kind }
        );
        master.receive(&closing()).unwrap();
        assert_eq!(master.live_channels(), 0);
        assert_eq!(
            violation(master.receive(&message)),
            SessionViolation::AfterClose { kind }
        );
    }
    let (mut master, mut server) = busy_pair();
    master.close(CloseReason::Done, "").unwrap();
    assert_eq!(
        violation(master.spawn(Spawn::new(0, 1, "a"))),
        SessionViolation::AfterClose { kind: "spawn" }
    );
    assert_eq!(
        violation(master.kill(2, 9)),
        SessionViolation::AfterClose { kind: "kill" }
    );
    server.close(CloseReason::ServerStopping, "").unwrap();
    assert_eq!(
        violation(server.exited(exit(2))),
        SessionViolation::AfterClose { kind: "reply" }
    );
    // A connection that just drops ends every channel too.
    let (mut master, _) = busy_pair();
    assert_eq!(master.end_all(), [2, 3]);
    assert_eq!(master.live_channels(), 0);
}

#[test]
fn the_server_shrugs_at_frames_for_ended_channels() {
    let (mut master, mut server) = busy_pair();
    // The master had not heard that channel 1 exited when it sent these.
    assert_eq!(
        server.receive(&routed(1)).unwrap(),
        ServerEvent::Stale { channel: 1 }
    );
    assert_eq!(
        server.receive(&kill(1)).unwrap(),
        ServerEvent::Stale { channel: 1 }
    );
    assert_eq!(server.live_channels(), 2);
    // The master itself sends no kill for an ended channel.
    assert_eq!(master.kill(1, 9).unwrap(), None);
}

#[test]
fn killing_a_starting_slave_cancels_its_spawn() {
    let (mut master, mut server) = busy_pair();
    let message = master.kill(3, 15).unwrap().expect("starting is live");
    assert_eq!(
        server.receive(&message).unwrap(),
        ServerEvent::Cancel { channel: 3 }
    );
    let reply = server
        .spawn_failed(3, SpawnFailure::Cancelled, "killed while queued".into())
        .unwrap();
    assert!(matches!(
        master.receive(&reply).unwrap(),
        ClientEvent::SpawnFailed(f) if f.kind == SpawnFailure::Cancelled && f.channel == 3
    ));
    assert_eq!((master.live_channels(), server.live_channels()), (1, 1));
    assert_eq!(
        server.receive(&kill(3)).unwrap(),
        ServerEvent::Stale { channel: 3 }
    );
}

#[test]
fn spawns_beyond_the_channel_limit_are_refused() {
    let mut master = ClientSession::new(SessionCodec::new());
    let mut server = ServerSession::new(SessionCodec::new(), 2);
    server.receive(&master.open("t").unwrap()).unwrap();
    master
        .receive(&server.welcome(&Welcome::new("h", 1, 2)).unwrap())
        .unwrap();
    for _ in 0..2 {
        let (_, message) = master.spawn(Spawn::new(0, 1, "a")).unwrap();
        assert!(matches!(
            server.receive(&message).unwrap(),
            ServerEvent::Spawn(_)
        ));
    }
    let (channel, message) = master.spawn(Spawn::new(0, 1, "a")).unwrap();
    let ServerEvent::Refused { channel: c, reply } = server.receive(&message).unwrap() else {
        panic!("not refused")
    };
    assert_eq!(c, channel);
    assert_eq!(
        server.live_channels(),
        2,
        "the refused channel never went live"
    );
    let SessionFrame::SpawnFailed(failed) = SessionCodec::new().decode(&reply).unwrap() else {
        panic!("the reply is no spawn-failed frame")
    };
    assert_eq!((failed.channel, failed.kind), (3, SpawnFailure::QueueFull));
    assert!(failed.message.contains('2'), "{}", failed.message);
    assert!(matches!(
        master.receive(&reply).unwrap(),
        ClientEvent::SpawnFailed(_)
    ));
    assert_eq!(master.live_channels(), 2);
    // The refused channel is ended: frames for it are stale, and it is never reused.
    assert_eq!(
        server.receive(&routed(3)).unwrap(),
        ServerEvent::Stale { channel: 3 }
    );
    assert!(matches!(
        violation(server.receive(&spawn(3))),
        SessionViolation::ChannelNotIncreasing {
            channel: 3,
            last: 3
        }
    ));
    // A place frees when a slave ends.
    server
        .spawned(Spawned {
            channel: 1,
            pid: 1,
            server_id: 1,
        })
        .unwrap();
    server.exited(exit(1)).unwrap();
    let (_, message) = master.spawn(Spawn::new(0, 1, "a")).unwrap();
    assert!(matches!(server.receive(&message).unwrap(), ServerEvent::Spawn(s) if s.channel == 4));
}
