//! Strategies for remote-session frames.

use bytes::Bytes;
use distio_proto::remote::{
    Ack, CloseReason, Closing, ExitCause, Exited, Kill, Open, Output, OutputStream, Resume,
    ResumeToken, Resumed, SessionFrame, Spawn, SpawnFailed, SpawnFailure, Spawned, Status, Welcome,
};
use proptest::collection::vec;
use proptest::prelude::*;

use super::frame;

pub fn spawn_failure() -> impl Strategy<Value = SpawnFailure> {
    proptest::sample::select(vec![
        SpawnFailure::NoSuchScript,
        SpawnFailure::NotExecutable,
        SpawnFailure::OutsideRoot,
        SpawnFailure::Invalid,
        SpawnFailure::QueueFull,
        SpawnFailure::QueueTimeout,
        SpawnFailure::Cancelled,
        SpawnFailure::ServerStopping,
        SpawnFailure::StartFailed,
    ])
}

pub fn exit_cause() -> impl Strategy<Value = ExitCause> {
    proptest::sample::select(vec![
        ExitCause::Exited,
        ExitCause::Killed,
        ExitCause::LifetimeLimit,
        ExitCause::SessionEnded,
        ExitCause::ServerStopping,
    ])
}

pub fn close_reason() -> impl Strategy<Value = CloseReason> {
    proptest::sample::select(vec![
        CloseReason::Done,
        CloseReason::ServerStopping,
        CloseReason::ProtocolViolation,
        CloseReason::HeartbeatLost,
        CloseReason::PassphraseRequired,
        CloseReason::PassphraseRefused,
        CloseReason::PassphraseUnexpected,
        CloseReason::ResumeRefused,
    ])
}

pub fn output_stream() -> impl Strategy<Value = OutputStream> {
    prop_oneof![Just(OutputStream::Stdout), Just(OutputStream::Stderr)]
}

/// Channel numbers: mostly small, so sequences name channels that exist, sometimes any.
pub fn channel() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..8, 1 => any::<u32>()]
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// A routed body: usually a real slave frame's body, sometimes arbitrary bytes (the
/// session does not look inside).
pub fn routed_body() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => frame().prop_map(|f| {
            let mut body = bytes::BytesMut::new();
            distio_proto::FrameCodec::new()
                .encode_body(&f, &mut body)
                .expect("every frame encodes");
            body.freeze()
        }),
        1 => bytes(64),
    ]
}

/// Any session frame, with magic and version left free so bad handshakes come too.
pub fn session_frame() -> impl Strategy<Value = SessionFrame> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>(), text()).prop_map(|(magic, version, client)| {
            SessionFrame::Open(Open {
                magic,
                version,
                client,
            })
        }),
        (
            (any::<[u8; 4]>(), any::<u16>(), text(), any::<u64>()),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        )
            .prop_map(
                |((magic, version, server, instance), (capacity, running, queued, cpus))| {
                    SessionFrame::Welcome(Welcome {
                        magic,
                        version,
                        server,
                        instance,
                        capacity,
                        running,
                        queued,
                        cpus,
                    })
                }
            ),
        (
            channel(),
            any::<u64>(),
            text(),
            vec(text(), 0..4),
            text(),
            proptest::option::of(text()),
        )
            .prop_map(|(channel, slave, script, args, alias, group)| {
                SessionFrame::Spawn(Spawn {
                    channel,
                    slave,
                    script,
                    args,
                    alias,
                    group,
                })
            }),
        (channel(), any::<u32>(), any::<u64>()).prop_map(|(channel, pid, server_id)| {
            SessionFrame::Spawned(Spawned {
                channel,
                pid,
                server_id,
            })
        }),
        (channel(), spawn_failure(), text()).prop_map(|(channel, kind, message)| {
            SessionFrame::SpawnFailed(SpawnFailed {
                channel,
                kind,
                message,
            })
        }),
        (channel(), routed_body())
            .prop_map(|(channel, body)| SessionFrame::Routed { channel, body }),
        (channel(), output_stream(), any::<u64>(), bytes(64)).prop_map(
            |(channel, stream, lost, data)| {
                SessionFrame::Output(Output {
                    channel,
                    stream,
                    lost,
                    data,
                })
            }
        ),
        (channel(), any::<i32>())
            .prop_map(|(channel, signal)| SessionFrame::Kill(Kill { channel, signal })),
        (
            channel(),
            any::<Option<i32>>(),
            any::<Option<i32>>(),
            exit_cause()
        )
            .prop_map(|(channel, code, signal, cause)| {
                SessionFrame::Exited(Exited {
                    channel,
                    code,
                    signal,
                    cause,
                })
            }),
        (close_reason(), text())
            .prop_map(|(reason, message)| SessionFrame::Closing(Closing { reason, message })),
        passphrase_frame(),
        resume_frame(),
        any::<[u32; 5]>().prop_map(|[capacity, running, queued, cpus, load_milli]| {
            SessionFrame::Status(Status {
                capacity,
                running,
                queued,
                cpus,
                load_milli,
            })
        }),
    ]
}

/// The passphrase handshake's frames, with any contents.
pub fn passphrase_frame() -> impl Strategy<Value = SessionFrame> {
    use distio_proto::remote::passphrase::{
        PassphraseChallenge, PassphraseConfirm, PassphraseHello, PassphraseProof,
    };
    prop_oneof![
        any::<[u8; 32]>()
            .prop_map(|nonce| SessionFrame::PassphraseHello(PassphraseHello { nonce })),
        (bytes(80), any::<u32>(), any::<[u8; 32]>()).prop_map(|(salt, iterations, nonce)| {
            SessionFrame::PassphraseChallenge(PassphraseChallenge {
                salt,
                iterations,
                nonce,
            })
        }),
        any::<[u8; 32]>().prop_map(|mac| SessionFrame::PassphraseProof(PassphraseProof { mac })),
        any::<[u8; 32]>()
            .prop_map(|mac| SessionFrame::PassphraseConfirm(PassphraseConfirm { mac })),
    ]
}

/// The resume frames (token, resume, resumed, ack), with any contents; the resume's magic
/// and version free so bad ones come too, and counts near the ends of their range.
pub fn resume_frame() -> impl Strategy<Value = SessionFrame> {
    let count = prop_oneof![Just(0u64), 0u64..100, Just(u64::MAX), any::<u64>()];
    prop_oneof![
        (any::<[u8; 32]>(), any::<u32>()).prop_map(|(token, grace_ms)| {
            SessionFrame::ResumeToken(ResumeToken { token, grace_ms })
        }),
        (
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            count.clone()
        )
            .prop_map(|(magic, version, token, instance, received)| {
                SessionFrame::Resume(Resume {
                    magic,
                    version,
                    token,
                    instance,
                    received,
                })
            }),
        (any::<u64>(), count.clone())
            .prop_map(|(instance, received)| SessionFrame::Resumed(Resumed { instance, received })),
        count.prop_map(|received| SessionFrame::Ack(Ack { received })),
    ]
}
