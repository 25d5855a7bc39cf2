//! Golden vectors of the session frames: the exact bytes of one sample of every
//! [`SessionFrame`] kind and every variant of the enums inside them, checked into
//! `tests/golden/session_*.bin`.
//!
//! They live here rather than in `tests/golden.rs` because the session enums are
//! `#[non_exhaustive]`: only inside the crate does a `match` on them fail to compile when a
//! variant is added without a sample. A change to the wire format fails here; if it is
//! deliberate, bump `PROTOCOL_VERSION`, update `docs/protocol.md`, and regenerate with
//! `DISTIO_BLESS=1 cargo test -p distio-proto --lib remote::golden`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::{Control, Frame, ProtoError};

const FAILURES: [SpawnFailure; 9] = [
    SpawnFailure::NoSuchScript,
    SpawnFailure::NotExecutable,
    SpawnFailure::OutsideRoot,
    SpawnFailure::Invalid,
    SpawnFailure::QueueFull,
    SpawnFailure::QueueTimeout,
    SpawnFailure::Cancelled,
    SpawnFailure::ServerStopping,
    SpawnFailure::StartFailed,
];

const CAUSES: [ExitCause; 5] = [
    ExitCause::Exited,
    ExitCause::Killed,
    ExitCause::LifetimeLimit,
    ExitCause::SessionEnded,
    ExitCause::ServerStopping,
];

const REASONS: [CloseReason; 8] = [
    CloseReason::Done,
    CloseReason::ServerStopping,
    CloseReason::ProtocolViolation,
    CloseReason::HeartbeatLost,
    CloseReason::PassphraseRequired,
    CloseReason::PassphraseRefused,
    CloseReason::PassphraseUnexpected,
    CloseReason::ResumeRefused,
];

const STREAMS: [OutputStream; 2] = [OutputStream::Stdout, OutputStream::Stderr];

/// Fails to compile when a spawn failure is added without a name (add it to `FAILURES`).
fn failure_name(kind: SpawnFailure) -> &'static str {
    match kind {
        SpawnFailure::NoSuchScript => "no_such_script",
        SpawnFailure::NotExecutable => "not_executable",
        SpawnFailure::OutsideRoot => "outside_root",
        SpawnFailure::Invalid => "invalid",
        SpawnFailure::QueueFull => "queue_full",
        SpawnFailure::QueueTimeout => "queue_timeout",
        SpawnFailure::Cancelled => "cancelled",
        SpawnFailure::ServerStopping => "server_stopping",
        SpawnFailure::StartFailed => "start_failed",
    }
}

/// Fails to compile when an exit cause is added without a name (add it to `CAUSES`).
fn cause_name(cause: ExitCause) -> &'static str {
    match cause {
        ExitCause::Exited => "exited",
        ExitCause::Killed => "killed",
        ExitCause::LifetimeLimit => "lifetime_limit",
        ExitCause::SessionEnded => "session_ended",
        ExitCause::ServerStopping => "server_stopping",
    }
}

/// Fails to compile when a close reason is added without a name (add it to `REASONS`).
fn reason_name(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Done => "done",
        CloseReason::ServerStopping => "server_stopping",
        CloseReason::ProtocolViolation => "protocol_violation",
        CloseReason::HeartbeatLost => "heartbeat_lost",
        CloseReason::PassphraseRequired => "passphrase_required",
        CloseReason::PassphraseRefused => "passphrase_refused",
        CloseReason::PassphraseUnexpected => "passphrase_unexpected",
        CloseReason::ResumeRefused => "resume_refused",
    }
}

/// Fails to compile when a stream is added without a name (add it to `STREAMS`).
fn stream_name(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    }
}

/// Fails to compile when a session frame kind is added without a sample below.
fn sample_of(kind: &SessionFrame) -> SessionFrame {
    match kind {
        SessionFrame::Open(_) => SessionFrame::Open(Open::new("ci")),
        SessionFrame::Welcome(_) => SessionFrame::Welcome(Welcome {
            running: 3,
            queued: 1,
            cpus: 4,
            ..Welcome::new("host-a", 0x0102_0304_0506_0708, 16)
        }),
        SessionFrame::Spawn(_) => SessionFrame::Spawn(Spawn {
            args: vec!["-v".into()],
            alias: "sq".into(),
            group: Some("g".into()),
            ..Spawn::new(1, 7, "square.py")
        }),
        SessionFrame::Spawned(_) => SessionFrame::Spawned(Spawned {
            channel: 1,
            pid: 4242,
            server_id: 40,
        }),
        SessionFrame::SpawnFailed(_) => failed(SpawnFailure::NoSuchScript),
        SessionFrame::Routed { .. } => {
            let mut body = BytesMut::new();
            crate::FrameCodec::new()
                .encode_body(&Frame::Control(Control::Ping(0xAB)), &mut body)
                .unwrap();
            SessionFrame::Routed {
                channel: 1,
                body: body.freeze(),
            }
        }
        SessionFrame::Output(_) => output(OutputStream::Stdout),
        SessionFrame::Kill(_) => SessionFrame::Kill(Kill {
            channel: 1,
            signal: 15,
        }),
        SessionFrame::Exited(_) => exited(ExitCause::Exited),
        SessionFrame::Closing(_) => closing(CloseReason::Done),
        SessionFrame::PassphraseHello(_) => {
            SessionFrame::PassphraseHello(passphrase::PassphraseHello { nonce: [0x11; 32] })
        }
        SessionFrame::PassphraseChallenge(_) => {
            SessionFrame::PassphraseChallenge(passphrase::PassphraseChallenge {
                salt: Bytes::from_static(&[0x5A; 16]),
                iterations: 600_000,
                nonce: [0x22; 32],
            })
        }
        SessionFrame::PassphraseProof(_) => {
            SessionFrame::PassphraseProof(passphrase::PassphraseProof { mac: [0x33; 32] })
        }
        SessionFrame::PassphraseConfirm(_) => {
            SessionFrame::PassphraseConfirm(passphrase::PassphraseConfirm { mac: [0x44; 32] })
        }
        SessionFrame::Status(_) => SessionFrame::Status(Status {
            capacity: 16,
            running: 3,
            queued: 1,
            cpus: 4,
            load_milli: 1_250,
        }),
        SessionFrame::ResumeToken(_) => SessionFrame::ResumeToken(ResumeToken {
            token: [0x55; 32],
            grace_ms: 30_000,
        }),
        SessionFrame::Resume(_) => {
            SessionFrame::Resume(Resume::new([0x66; 32], 0x0102_0304_0506_0708, 41))
        }
        SessionFrame::Resumed(_) => SessionFrame::Resumed(Resumed {
            instance: 0x0102_0304_0506_0708,
            received: 42,
        }),
        SessionFrame::Ack(_) => SessionFrame::Ack(Ack { received: 0x0100 }),
    }
}

fn failed(kind: SpawnFailure) -> SessionFrame {
    SessionFrame::SpawnFailed(SpawnFailed {
        channel: 2,
        kind,
        message: failure_name(kind).into(),
    })
}

fn output(stream: OutputStream) -> SessionFrame {
    SessionFrame::Output(Output {
        channel: 1,
        stream,
        lost: 2,
        data: Bytes::from_static(b"hi\n"),
    })
}

fn exited(cause: ExitCause) -> SessionFrame {
    let killed = cause != ExitCause::Exited;
    SessionFrame::Exited(Exited {
        channel: 1,
        code: (!killed).then_some(0),
        signal: killed.then_some(15),
        cause,
    })
}

fn closing(reason: CloseReason) -> SessionFrame {
    SessionFrame::Closing(Closing {
        reason,
        message: reason_name(reason).into(),
    })
}

/// A placeholder of each kind, only to pick the samples through [`sample_of`].
fn kinds() -> Vec<SessionFrame> {
    vec![
        SessionFrame::Open(Open::new("")),
        SessionFrame::Welcome(Welcome::new("", 0, 0)),
        SessionFrame::Spawn(Spawn::new(0, 0, "")),
        SessionFrame::Spawned(Spawned {
            channel: 0,
            pid: 0,
            server_id: 0,
        }),
        failed(SpawnFailure::Invalid),
        SessionFrame::Routed {
            channel: 0,
            body: Bytes::new(),
        },
        output(OutputStream::Stdout),
        SessionFrame::Kill(Kill {
            channel: 0,
            signal: 0,
        }),
        exited(ExitCause::Exited),
        closing(CloseReason::Done),
        SessionFrame::PassphraseHello(passphrase::PassphraseHello { nonce: [0; 32] }),
        SessionFrame::PassphraseChallenge(passphrase::PassphraseChallenge {
            salt: Bytes::new(),
            iterations: 0,
            nonce: [0; 32],
        }),
        SessionFrame::PassphraseProof(passphrase::PassphraseProof { mac: [0; 32] }),
        SessionFrame::PassphraseConfirm(passphrase::PassphraseConfirm { mac: [0; 32] }),
        SessionFrame::Status(Status::default()),
        SessionFrame::ResumeToken(ResumeToken {
            token: [0; 32],
            grace_ms: 0,
        }),
        SessionFrame::Resume(Resume::new([0; 32], 0, 0)),
        SessionFrame::Resumed(Resumed {
            instance: 0,
            received: 0,
        }),
        SessionFrame::Ack(Ack { received: 0 }),
    ]
}

fn samples() -> Vec<(String, SessionFrame)> {
    let mut out: Vec<(String, SessionFrame)> = kinds()
        .iter()
        .filter(|k| {
            !matches!(
                k,
                SessionFrame::SpawnFailed(_)
                    | SessionFrame::Output(_)
                    | SessionFrame::Exited(_)
                    | SessionFrame::Closing(_)
            )
        })
        .map(|k| {
            let name = k.kind().replace('-', "_");
            (format!("session_{name}"), sample_of(k))
        })
        .collect();
    for kind in FAILURES {
        let name = format!("session_spawn_failed_{}", failure_name(kind));
        out.push((name, failed(kind)));
    }
    for stream in STREAMS {
        let name = format!("session_output_{}", stream_name(stream));
        out.push((name, output(stream)));
    }
    for cause in CAUSES {
        out.push((
            format!("session_exited_{}", cause_name(cause)),
            exited(cause),
        ));
    }
    for reason in REASONS {
        let name = format!("session_closing_{}", reason_name(reason));
        out.push((name, closing(reason)));
    }
    out
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn samples_cover_every_session_frame_kind() {
    let tags: BTreeSet<u32> = samples().iter().map(|(_, f)| f.tag()).collect();
    let all: BTreeSet<u32> = (SessionFrame::FIRST_TAG..SessionFrame::END_TAG).collect();
    assert_eq!(tags, all, "a session frame kind has no golden sample");
    assert_eq!(tags.len(), kinds().len());
}

#[test]
fn encoding_matches_golden_bytes() {
    let bless = std::env::var_os("DISTIO_BLESS").is_some();
    let codec = SessionCodec::new();
    let mut mismatches = Vec::new();
    for (name, frame) in samples() {
        let encoded = codec.encode(&frame).unwrap();
        let path = golden_dir().join(format!("{name}.bin"));
        if bless {
            std::fs::write(&path, &encoded).unwrap();
            continue;
        }
        let expected = std::fs::read(&path)
            .unwrap_or_else(|err| panic!("{}: {err}; run with DISTIO_BLESS=1", path.display()));
        if expected != encoded.as_ref() {
            mismatches.push(format!(
                "{name}:\n  golden  {expected:02x?}\n  encoded {:02x?}",
                &encoded[..]
            ));
        }
        // And the checked-in bytes decode to the sample.
        assert_eq!(
            codec.decode(&Bytes::from(expected)).unwrap(),
            frame,
            "{name}"
        );
    }
    assert!(
        mismatches.is_empty(),
        "wire format changed:\n{}",
        mismatches.join("\n")
    );
}

/// A message whose nested enum index is `index`, every other field at its smallest.
fn with_index(tag: u32, channel: Option<u32>, before: &[u8], index: u32, after: usize) -> Bytes {
    let mut m = BytesMut::new();
    m.put_u32_le(tag);
    if let Some(channel) = channel {
        m.put_u32_le(channel);
    }
    m.put_slice(before);
    m.put_u32_le(index);
    m.put_bytes(0, after);
    m.freeze()
}

/// The lists above hold every variant, in wire order: index `i` decodes to the `i`-th,
/// and the index after the last is unknown.
#[test]
fn variant_lists_are_complete_and_in_wire_order() {
    let codec = SessionCodec::new();
    let check = |len: usize, message: &dyn Fn(u32) -> Bytes, nth: &dyn Fn(usize, SessionFrame)| {
        for i in 0..len {
            nth(i, codec.decode(&message(i as u32)).unwrap());
        }
        let past = codec.decode(&message(len as u32)).unwrap_err();
        assert!(matches!(past, ProtoError::UnknownVariant { .. }), "{past}");
    };
    check(
        FAILURES.len(),
        &|i| with_index(10, Some(1), &[], i, 8),
        &|i, f| assert!(matches!(f, SessionFrame::SpawnFailed(s) if s.kind == FAILURES[i])),
    );
    check(
        STREAMS.len(),
        &|i| with_index(12, Some(1), &[], i, 16),
        &|i, f| assert!(matches!(f, SessionFrame::Output(o) if o.stream == STREAMS[i])),
    );
    check(
        CAUSES.len(),
        &|i| with_index(14, Some(1), &[0, 0], i, 0),
        &|i, f| assert!(matches!(f, SessionFrame::Exited(e) if e.cause == CAUSES[i])),
    );
    check(
        REASONS.len(),
        &|i| with_index(15, None, &[], i, 8),
        &|i, f| assert!(matches!(f, SessionFrame::Closing(c) if c.reason == REASONS[i])),
    );
}
