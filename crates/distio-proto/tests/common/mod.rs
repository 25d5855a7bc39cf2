//! Strategies and helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use bytes::BytesMut;
use distio_proto::{
    Control, ErrorKind, Event, Frame, FrameCodec, Hello, Metadata, Payload, ProtoError, Ready,
    Request, Response, SlaveIdentity, TaskError,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use std::time::Duration;
use tokio_util::codec::{Decoder, Encoder};

mod phases;
mod session;
// Each test binary and the unit tests use only some of these.
#[allow(unused_imports)]
pub use phases::*;
#[allow(unused_imports)]
pub use session::*;

pub fn payload() -> impl Strategy<Value = Payload> {
    vec(any::<u8>(), 0..64).prop_map(|v| Payload::from_bytes(v.into()))
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

pub fn identity() -> impl Strategy<Value = SlaveIdentity> {
    (
        any::<u64>(),
        text(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
    )
        .prop_map(|(id, alias, server_id, remote_id)| SlaveIdentity {
            id,
            alias,
            server_id,
            remote_id,
        })
}

pub fn metadata() -> impl Strategy<Value = Metadata> {
    (
        proptest::option::of(
            (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        ),
        any::<Option<bool>>(),
        btree_map(text(), payload(), 0..4),
    )
        .prop_map(|(timeout, catch_all, extra)| Metadata {
            timeout,
            catch_all,
            extra,
        })
}

pub fn error_kind() -> impl Strategy<Value = ErrorKind> {
    proptest::sample::select(ErrorKind::ALL.to_vec())
}

pub fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        Just(Control::Close),
        Just(Control::Shutdown),
        any::<u64>().prop_map(Control::Ping),
        any::<u64>().prop_map(Control::Pong),
    ]
}

/// Any frame, with the magic and version left free so bad handshakes are generated too.
pub fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>(), identity()).prop_map(|(magic, version, identity)| {
            Frame::Hello(Hello {
                magic,
                version,
                identity,
            })
        }),
        (
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
            text(),
            vec(text(), 0..4)
        )
            .prop_map(|(magic, version, pid, id, alias, tasks)| {
                Frame::Ready(Ready {
                    magic,
                    version,
                    pid,
                    id,
                    alias,
                    tasks,
                })
            }),
        (any::<u64>(), text(), payload(), metadata()).prop_map(|(id, task, payload, meta)| {
            Frame::Request(Request {
                id,
                task,
                payload,
                meta,
            })
        }),
        (
            any::<u64>(),
            any::<u64>(),
            prop_oneof![
                payload().prop_map(Ok),
                (error_kind(), text()).prop_map(|(kind, message)| Err(TaskError { kind, message })),
            ]
        )
            .prop_map(|(request, slave, outcome)| Frame::Response(Response {
                request,
                slave,
                outcome
            })),
        control().prop_map(Frame::Control),
        (text(), payload()).prop_map(|(name, payload)| Frame::Event(Event { name, payload })),
    ]
}

pub fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    for f in frames {
        codec.encode(f, &mut buf).expect("every frame encodes");
    }
    buf
}

/// Feeds `chunks` to a decoder one after another, collecting frames until the first error.
pub fn decode_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Frame>, Option<ProtoError>) {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => break,
                Err(err) => return (out, Some(err)),
            }
        }
    }
    (out, None)
}
