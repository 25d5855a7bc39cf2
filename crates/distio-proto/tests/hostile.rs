//! Bytes from a hostile or broken peer never panic and never allocate beyond the limit.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{decode_chunks, encode_all, frame};
use distio_proto::{Control, Event, Frame, FrameCodec, Payload, ProtoError};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode_chunks([&bytes[..]]);
    }

    #[test]
    fn random_bodies_under_a_valid_header_never_panic(body in vec(any::<u8>(), 0..256)) {
        let mut buf = BytesMut::new();
        buf.put_u32(body.len() as u32);
        buf.extend_from_slice(&body);
        let _ = decode_chunks([&buf[..]]);
    }

    #[test]
    fn mutated_frames_never_panic(
        f in frame(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode_all(&[f]).to_vec();
        for (at, value) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        let _ = decode_chunks([&bytes[..]]);
        // Truncated anywhere: either waits for more or reports an error.
        let end = cut.index(bytes.len() + 1);
        let _ = decode_chunks([&bytes[..end]]);
    }

    #[test]
    fn forged_lengths_inside_bodies_never_panic(f in frame(), at in any::<prop::sample::Index>(), len in any::<u64>()) {
        // Overwrite eight bytes with a huge little-endian length: where a string, list or
        // payload length sits, the decoder must refuse it without allocating it.
        let mut bytes = encode_all(&[f]).to_vec();
        if bytes.len() >= 4 + 8 {
            let i = 4 + at.index(bytes.len() - 4 - 8 + 1);
            bytes[i..i + 8].copy_from_slice(&len.to_le_bytes());
            let _ = decode_chunks([&bytes[..]]);
        }
    }

    #[test]
    fn random_bodies_decode_as_the_stream_decoder_decodes_them(body in vec(any::<u8>(), 0..512)) {
        let codec = FrameCodec::new();
        let alone = codec.decode_body(&body);
        let shared = codec.decode_body_bytes(&Bytes::from(body.clone()));
        let mut stream = BytesMut::new();
        stream.put_u32(body.len() as u32);
        stream.extend_from_slice(&body);
        let (frames, err) = decode_chunks([&stream[..]]);
        let streamed = match err {
            Some(err) => Err(err),
            None => Ok(frames.into_iter().next().expect("a whole frame was there")),
        };
        prop_assert_eq!(format!("{alone:?}"), format!("{streamed:?}"));
        prop_assert_eq!(format!("{shared:?}"), format!("{streamed:?}"));
    }

    #[test]
    fn mutated_and_truncated_bodies_never_panic(
        f in frame(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let codec = FrameCodec::new();
        let mut body = encode_all(&[f]).split_off(4).to_vec();
        let end = cut.index(body.len());
        // A strict prefix of a body is never a whole frame.
        let cut_short = [
            codec.decode_body(&body[..end]),
            codec.decode_body_bytes(&Bytes::copy_from_slice(&body[..end])),
        ];
        for decoded in cut_short {
            prop_assert!(matches!(decoded, Err(ProtoError::Malformed { .. })), "{decoded:?}");
        }
        for (at, value) in &edits {
            let i = at.index(body.len());
            body[i] = *value;
        }
        let _ = codec.decode_body(&body);
        let _ = codec.decode_body(&body[..end]);
        let _ = codec.decode_body_bytes(&Bytes::from(body));
    }

    #[test]
    fn trailing_bytes_after_a_body_are_an_error(f in frame(), extra in vec(any::<u8>(), 1..16)) {
        let codec = FrameCodec::new();
        let mut body = encode_all(&[f]).split_off(4);
        let used = body.len();
        body.extend_from_slice(&extra);
        for err in [codec.decode_body(&body).unwrap_err(), codec.decode_body_bytes(&body.freeze()).unwrap_err()] {
            prop_assert!(
                matches!(err, ProtoError::TrailingBytes { used: u, extra: e } if u == used && e == extra.len()),
                "{err}"
            );
        }
    }

    #[test]
    fn random_payloads_never_panic(bytes in vec(any::<u8>(), 0..128)) {
        let p = Payload::from_bytes(bytes.into());
        let _ = p.decode::<String>();
        let _ = p.decode::<Vec<String>>();
        let _ = p.decode::<std::collections::HashMap<String, Vec<u8>>>();
        let _ = p.decode::<(u64, Option<String>, Vec<(u8, String)>)>();
    }
}

#[test]
fn oversize_header_is_rejected_without_allocating() {
    for limit in [0usize, 1, 1024, distio_proto::DEFAULT_MAX_FRAME_LEN] {
        let mut codec = FrameCodec::with_max_frame_len(limit);
        let mut buf = BytesMut::with_capacity(4);
        buf.put_u32((limit as u32).saturating_add(1).max(1));
        let cap = buf.capacity();
        match codec.decode(&mut buf) {
            Err(ProtoError::FrameTooLarge { len, max }) => {
                assert_eq!(max, limit);
                assert!(len > limit as u64);
            }
            other => panic!("limit {limit}: expected FrameTooLarge, got {other:?}"),
        }
        assert_eq!(buf.capacity(), cap, "no allocation for a refused frame");
    }
}

#[test]
fn forged_huge_string_in_payload_is_refused() {
    // bincode length 2^62 for a String with no bytes behind it.
    let p = Payload::from_bytes(bytes::Bytes::from_static(&[
        0, 0, 0, 0, 0, 0, 0, 0x40, b'x',
    ]));
    let err = p.decode::<String>().unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::PayloadDecode {
                expected: "alloc::string::String",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_handshakes_have_distinct_errors() {
    use distio_proto::{Hello, SlaveIdentity};
    let mut hello = Hello::new(SlaveIdentity::local(1, "a"));
    assert!(hello.check().is_ok());
    hello.magic = *b"JSON";
    assert!(matches!(hello.check(), Err(ProtoError::BadMagic { found, .. }) if &found == b"JSON"));
    hello.magic = distio_proto::MAGIC;
    hello.version = 2;
    assert!(matches!(
        hello.check(),
        Err(ProtoError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    ));
}

#[test]
fn oversize_bodies_are_refused_before_decoding() {
    let ping = Frame::Control(Control::Ping(1)); // a 16-byte body
    for limit in [0usize, 1, 15] {
        let codec = FrameCodec::with_max_frame_len(limit);
        let mut body = BytesMut::new();
        FrameCodec::new().encode_body(&ping, &mut body).unwrap();
        let body = body.freeze();
        for err in [
            codec.decode_body(&body).unwrap_err(),
            codec.decode_body_bytes(&body).unwrap_err(),
        ] {
            assert!(
                matches!(err, ProtoError::FrameTooLarge { len: 16, max } if max == limit),
                "limit {limit}: {err}"
            );
        }
    }
    // Garbage over the limit is refused for its size, not decoded.
    let err = FrameCodec::with_max_frame_len(8)
        .decode_body(&[0xff; 9])
        .unwrap_err();
    assert!(
        matches!(err, ProtoError::FrameTooLarge { len: 9, max: 8 }),
        "{err}"
    );
    assert_eq!(
        FrameCodec::with_max_frame_len(16)
            .decode_body(&{
                let mut b = BytesMut::new();
                FrameCodec::new().encode_body(&ping, &mut b).unwrap();
                b
            })
            .unwrap(),
        ping
    );
}

#[test]
fn oversize_frames_are_not_encoded_as_bodies() {
    let frames = [
        Frame::Control(Control::Ping(1)),
        Frame::Event(Event {
            name: "e".into(),
            payload: Payload::from_bytes(Bytes::from(vec![0u8; 4096])),
        }),
        Frame::Request(distio_proto::Request {
            id: 1,
            task: "t".into(),
            payload: Payload::from_bytes(Bytes::from(vec![0u8; 4096])),
            meta: Default::default(),
        }),
    ];
    for frame in frames {
        let codec = FrameCodec::with_max_frame_len(15);
        let mut dst = BytesMut::from(&b"earlier message"[..]);
        let err = codec.encode_body(&frame, &mut dst).unwrap_err();
        let len = FrameCodec::new().encoded_len(&frame).unwrap() as u64;
        assert!(
            matches!(err, ProtoError::FrameTooLarge { len: l, max: 15 } if l == len),
            "{err}"
        );
        assert_eq!(&dst[..], b"earlier message", "dst is left as it was");
    }
}
