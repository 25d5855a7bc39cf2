//! Golden vectors: the exact bytes of one sample of every frame (and every nested variant),
//! checked into `tests/golden/`. A change to the wire format fails here; if the change is
//! deliberate, bump `PROTOCOL_VERSION`, update `docs/protocol.md`, and regenerate with
//! `DISTIO_BLESS=1 cargo test -p distio-proto --test golden`.
//!
//! The remote-session frames' vectors (`tests/golden/session_*.bin`) are checked by the unit
//! tests in `src/remote/golden.rs`, where a `match` on their non-exhaustive enums can be
//! exhaustive.

use bytes::BytesMut;
use distio_proto::{
    Control, ErrorKind, Event, Frame, FrameCodec, Hello, Metadata, Payload, Ready, Request,
    Response, SlaveIdentity, TaskError,
};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::codec::{Decoder, Encoder};

/// Fails to compile when an error kind is added without a golden sample.
fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::UnknownTask => "unknown_task",
        ErrorKind::HandlerFailed => "handler_failed",
        ErrorKind::HandlerPanicked => "handler_panicked",
        ErrorKind::Paused => "paused",
        ErrorKind::TimedOut => "timed_out",
        ErrorKind::SlaveExited => "slave_exited",
        ErrorKind::Closed => "closed",
    }
}

/// Fails to compile when a control message is added without a golden sample.
fn control_name(control: Control) -> &'static str {
    match control {
        Control::Close => "close",
        Control::Shutdown => "shutdown",
        Control::Ping(_) => "ping",
        Control::Pong(_) => "pong",
    }
}

fn samples() -> Vec<(String, Frame)> {
    let pay = |v: &(&str, u32)| Payload::encode(v).unwrap();
    let mut out = vec![
        (
            "hello_local".to_owned(),
            Frame::Hello(Hello::new(SlaveIdentity::local(7, "worker"))),
        ),
        (
            "hello_proxied".to_owned(),
            Frame::Hello(Hello::new(SlaveIdentity {
                id: 2,
                alias: "r".into(),
                server_id: Some(40),
                remote_id: Some(2),
            })),
        ),
        (
            "ready".to_owned(),
            Frame::Ready(Ready::new(
                4242,
                7,
                "worker",
                vec!["say hello".into(), "square".into()],
            )),
        ),
        (
            "request_plain".to_owned(),
            Frame::Request(Request {
                id: 1,
                task: "square".into(),
                payload: Payload::encode(&12u64).unwrap(),
                meta: Metadata::default(),
            }),
        ),
        (
            "request_full_metadata".to_owned(),
            Frame::Request(Request {
                id: 0x0102_0304_0506_0708,
                task: "say hello".into(),
                payload: pay(&("hi", 42)),
                meta: Metadata::new()
                    .with_timeout(Duration::new(1, 500_000_000))
                    .with_catch_all(true)
                    .with_extra("trace", Payload::encode("abc").unwrap()),
            }),
        ),
        (
            "response_ok".to_owned(),
            Frame::Response(Response {
                request: 1,
                slave: 7,
                outcome: Ok(pay(&("hi", 42))),
            }),
        ),
        (
            "event".to_owned(),
            Frame::Event(Event {
                name: "progress".into(),
                payload: Payload::encode(&0.5f64).unwrap(),
            }),
        ),
    ];
    for kind in ErrorKind::ALL {
        out.push((
            format!("response_err_{}", kind_name(kind)),
            Frame::Response(Response {
                request: 9,
                slave: 3,
                outcome: Err(TaskError::new(kind, format!("{kind}"))),
            }),
        ));
    }
    for control in [
        Control::Close,
        Control::Shutdown,
        Control::Ping(0xAB),
        Control::Pong(0xAB),
    ] {
        out.push((
            format!("control_{}", control_name(control)),
            Frame::Control(control),
        ));
    }
    out
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn samples_cover_every_frame_kind() {
    let kinds: std::collections::BTreeSet<&str> = samples().iter().map(|(_, f)| f.kind()).collect();
    assert_eq!(
        kinds.len() as u32,
        Frame::KINDS,
        "a frame kind has no golden sample: {kinds:?}"
    );
}

#[test]
fn encoding_matches_golden_bytes() {
    let bless = std::env::var_os("DISTIO_BLESS").is_some();
    let mut codec = FrameCodec::new();
    let mut mismatches = Vec::new();
    for (name, frame) in samples() {
        let mut buf = BytesMut::new();
        codec.encode(&frame, &mut buf).unwrap();
        let path = golden_dir().join(format!("{name}.bin"));
        if bless {
            std::fs::write(&path, &buf).unwrap();
            continue;
        }
        let expected = std::fs::read(&path)
            .unwrap_or_else(|err| panic!("{}: {err}; run with DISTIO_BLESS=1", path.display()));
        if expected != buf.as_ref() {
            mismatches.push(format!(
                "{name}:\n  golden  {expected:02x?}\n  encoded {:02x?}",
                &buf[..]
            ));
        }
        // And the checked-in bytes decode to the sample.
        let mut wire = BytesMut::from(&expected[..]);
        assert_eq!(
            codec.decode(&mut wire).unwrap().as_ref(),
            Some(&frame),
            "{name}"
        );
        assert!(wire.is_empty(), "{name}: bytes left over");
    }
    assert!(
        mismatches.is_empty(),
        "wire format changed:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn request_bytes_are_as_documented() {
    // The worked example in docs/protocol.md, byte for byte.
    let frame = Frame::Request(Request {
        id: 1,
        task: "square".into(),
        payload: Payload::encode(&12u64).unwrap(),
        meta: Metadata::default(),
    });
    let mut buf = BytesMut::new();
    FrameCodec::new().encode(&frame, &mut buf).unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x00, 0x00, 0x00, 0x34,                         // body length 52, big endian
        0x02, 0x00, 0x00, 0x00,                         // Frame tag 2 = Request
        0x01, 0, 0, 0, 0, 0, 0, 0,                      // id = 1
        0x06, 0, 0, 0, 0, 0, 0, 0, b's', b'q', b'u', b'a', b'r', b'e', // task
        0x08, 0, 0, 0, 0, 0, 0, 0,                      // payload length 8
        0x0c, 0, 0, 0, 0, 0, 0, 0,                      // payload: 12u64
        0x00,                                           // timeout: None
        0x00,                                           // catch_all: None
        0x00, 0, 0, 0, 0, 0, 0, 0,                      // extra: 0 entries
    ];
    assert_eq!(&buf[..], expected);
}
