//! Every session frame survives encode → decode; routed bodies and large output are shared
//! with the message, not copied.

mod common;

use bytes::{Bytes, BytesMut};
use common::{frame, session_frame};
use distio_proto::remote::{Output, OutputStream, ROUTED_HEADER_LEN, SessionCodec, SessionFrame};
use distio_proto::{FrameCodec, ProtoError};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_session_frame_round_trips(f in session_frame()) {
        let codec = SessionCodec::new();
        let message = codec.encode(&f).unwrap();
        prop_assert_eq!(&message[..4], &f.tag().to_le_bytes()[..]);
        prop_assert!(message.len() <= codec.max_message_len());
        prop_assert_eq!(codec.decode(&message).unwrap(), f);
    }

    #[test]
    fn a_routed_body_shares_the_message(channel in any::<u32>(), f in frame()) {
        let codec = SessionCodec::new();
        let mut message = BytesMut::from(&b"earlier"[..]);
        codec.encode_routed(channel, &f, &mut message).unwrap();
        let message = message.split_off(7).freeze();
        let SessionFrame::Routed { channel: c, body } = codec.decode(&message).unwrap() else {
            panic!("not routed");
        };
        prop_assert_eq!(c, channel);
        prop_assert_eq!(body.as_ptr(), message[ROUTED_HEADER_LEN..].as_ptr(), "body copied");
        prop_assert_eq!(body.len(), message.len() - ROUTED_HEADER_LEN);
        prop_assert_eq!(codec.frame_codec().decode_body_bytes(&body).unwrap(), f.clone());
        // The hand-laid header plus the slave link's body, as `encode` lays it too.
        let again = codec.encode(&SessionFrame::Routed { channel, body: body.clone() }).unwrap();
        prop_assert_eq!(&again[..], &message[..]);
        let mut link = BytesMut::new();
        FrameCodec::new().encode_body(&f, &mut link).unwrap();
        prop_assert_eq!(&body[..], &link[..]);
    }
}

#[test]
fn large_output_is_shared_and_small_output_copied() {
    let codec = SessionCodec::new();
    for len in [16usize, 64 * 1024] {
        let frame = SessionFrame::Output(Output {
            channel: 1,
            stream: OutputStream::Stderr,
            lost: 0,
            data: Bytes::from(vec![b'x'; len]),
        });
        let message = codec.encode(&frame).unwrap();
        let SessionFrame::Output(back) = codec.decode(&message).unwrap() else {
            panic!("not output");
        };
        let shared = message.as_ptr_range().contains(&back.data.as_ptr());
        assert_eq!(shared, len >= 4096, "{len} bytes");
        assert_eq!(SessionFrame::Output(back), frame);
    }
}

#[test]
fn a_routed_body_up_to_the_limit_passes_and_one_byte_more_does_not() {
    let codec = SessionCodec::with_max_frame_len(32);
    assert_eq!(codec.max_message_len(), 32 + ROUTED_HEADER_LEN);
    let routed = |len: usize| SessionFrame::Routed {
        channel: 1,
        body: Bytes::from(vec![0u8; len]),
    };
    let at_limit = codec.encode(&routed(32)).unwrap();
    assert_eq!(codec.decode(&at_limit).unwrap(), routed(32));
    let err = codec.encode(&routed(33)).unwrap_err();
    assert!(
        matches!(err, ProtoError::FrameTooLarge { len: 33, max: 32 }),
        "{err}"
    );
}
