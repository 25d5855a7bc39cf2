//! Bytes from a hostile or broken peer never panic and never allocate beyond the limit.

mod common;

use bytes::{BufMut, BytesMut};
use common::{decode_chunks, encode_all, frame};
use distio_proto::{FrameCodec, Payload, ProtoError};
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
