//! Every frame survives encode → decode, however the bytes are chunked.

mod common;

use bytes::{Bytes, BytesMut};
use common::{decode_chunks, encode_all, frame};
use distio_proto::{Event, Frame, FrameCodec, HEADER_LEN, Payload};
use proptest::collection::vec;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_frame_round_trips(f in frame()) {
        let bytes = encode_all(std::slice::from_ref(&f));
        let (frames, err) = decode_chunks([&bytes[..]]);
        prop_assert!(err.is_none(), "{err:?}");
        prop_assert_eq!(frames, vec![f]);
    }

    #[test]
    fn stream_split_at_every_boundary_decodes_the_same(frames in vec(frame(), 1..6)) {
        let bytes = encode_all(&frames);
        for cut in 0..=bytes.len() {
            let (got, err) = decode_chunks([&bytes[..cut], &bytes[cut..]]);
            prop_assert!(err.is_none(), "cut {cut}: {err:?}");
            prop_assert_eq!(&got, &frames, "cut at {}", cut);
        }
    }

    #[test]
    fn stream_fed_one_byte_at_a_time_decodes_the_same(frames in vec(frame(), 1..6)) {
        let bytes = encode_all(&frames);
        let (got, err) = decode_chunks(bytes.chunks(1));
        prop_assert!(err.is_none(), "{err:?}");
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn every_frame_round_trips_as_a_body(f in frame()) {
        let codec = FrameCodec::new();
        let mut body = BytesMut::new();
        codec.encode_body(&f, &mut body).unwrap();
        prop_assert_eq!(&codec.decode_body(&body).unwrap(), &f);
        prop_assert_eq!(codec.decode_body_bytes(&body.freeze()).unwrap(), f);
    }

    #[test]
    fn a_body_is_the_stream_encoding_without_its_prefix(frames in vec(frame(), 1..4)) {
        // Appended after other bodies, too: each lands at the end of what is there.
        let codec = FrameCodec::new();
        let mut bodies = BytesMut::new();
        let mut expected = Vec::new();
        for f in &frames {
            let stream = encode_all(std::slice::from_ref(f));
            let (prefix, body) = stream.split_at(HEADER_LEN);
            prop_assert_eq!(prefix, &(body.len() as u32).to_be_bytes()[..]);
            prop_assert_eq!(body.len(), codec.encoded_len(f).unwrap());
            expected.extend_from_slice(body);
            codec.encode_body(f, &mut bodies).unwrap();
        }
        prop_assert_eq!(&bodies[..], &expected[..]);
    }

    #[test]
    fn payload_values_round_trip(v in any::<(String, Vec<u64>, Option<i32>, bool)>()) {
        let p = Payload::encode(&v).unwrap();
        prop_assert_eq!(p.decode::<(String, Vec<u64>, Option<i32>, bool)>().unwrap(), v);
    }
}

#[test]
fn large_payloads_share_a_bytes_body_and_are_copied_from_a_slice() {
    let codec = FrameCodec::new();
    for len in [16usize, 64 * 1024] {
        let frame = Frame::Event(Event {
            name: "e".into(),
            payload: Payload::from_bytes(Bytes::from(vec![3u8; len])),
        });
        let mut buf = BytesMut::new();
        codec.encode_body(&frame, &mut buf).unwrap();
        let body = buf.freeze();
        let inside = body.as_ptr_range();
        let payload_at = |frame: Frame| match frame {
            Frame::Event(event) => event.payload.as_bytes().as_ptr(),
            other => panic!("{other:?}"),
        };
        let shared = payload_at(codec.decode_body_bytes(&body).unwrap());
        assert_eq!(inside.contains(&shared), len > 4096, "{len} bytes");
        let copied = payload_at(codec.decode_body(&body).unwrap());
        assert!(!inside.contains(&copied), "{len} bytes");
    }
}
