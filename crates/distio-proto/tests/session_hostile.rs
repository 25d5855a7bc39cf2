//! Messages from a hostile or broken peer never panic the session codec or either state
//! machine, in any phase; oversize messages are refused before they are decoded.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{clients, resume_frame, servers, session_frame, token_pair};
use distio_proto::ProtoError;
use distio_proto::remote::{
    ClientEvent, ClientSession, ServerEvent, ServerSession, SessionCodec, SessionFrame,
    SessionViolation,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Hands `message` to the codec and to both sides in every phase; none may panic, and
/// what the codec refuses both sides refuse.
fn feed_everywhere(message: &[u8]) {
    let message = Bytes::copy_from_slice(message);
    let decoded = SessionCodec::new().decode(&message);
    for (phase, mut client) in clients() {
        let got = client.receive(&message);
        assert!(decoded.is_ok() || got.is_err(), "client {phase}: {got:?}");
    }
    for (phase, mut server) in servers() {
        let got = server.receive(&message);
        assert!(decoded.is_ok() || got.is_err(), "server {phase}: {got:?}");
    }
}

fn encode(f: &SessionFrame) -> Vec<u8> {
    SessionCodec::new().encode(f).unwrap().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        feed_everywhere(&bytes);
    }

    #[test]
    fn random_bytes_after_a_session_tag_never_panic(tag in 0u32..SessionFrame::END_TAG, rest in vec(any::<u8>(), 0..128)) {
        let mut m = BytesMut::new();
        m.put_u32_le(tag);
        m.put_slice(&rest);
        feed_everywhere(&m);
    }

    #[test]
    fn every_well_formed_frame_is_taken_or_refused_without_panicking(f in session_frame()) {
        feed_everywhere(&encode(&f));
    }

    #[test]
    fn mutated_and_truncated_frames_never_panic(
        f in session_frame(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&f);
        let end = cut.index(bytes.len());
        // A strict prefix is never a whole frame, except a routed one cut inside its body.
        let short = SessionCodec::new().decode(&Bytes::copy_from_slice(&bytes[..end]));
        prop_assert!(short.is_err() || (f.tag() == 11 && end >= 8), "{short:?}");
        feed_everywhere(&bytes[..end]);
        for (at, value) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        feed_everywhere(&bytes);
    }

    #[test]
    fn forged_lengths_never_panic(f in session_frame(), at in any::<prop::sample::Index>(), len in any::<u64>()) {
        // Eight bytes after the tag become a huge little-endian length: where a string,
        // list or byte string's length sits, it must be refused without being allocated.
        let mut bytes = encode(&f);
        if bytes.len() >= 4 + 8 {
            let i = 4 + at.index(bytes.len() - 4 - 8 + 1);
            bytes[i..i + 8].copy_from_slice(&len.to_le_bytes());
            feed_everywhere(&bytes);
        }
    }

    #[test]
    fn a_resuming_master_takes_only_resumed_or_closing(f in session_frame()) {
        let (mut master, _) = token_pair();
        master.resume([7; 32], 1, 0).unwrap();
        let got = master.receive(&Bytes::from(encode(&f)));
        match f {
            SessionFrame::Resumed(resumed) => prop_assert_eq!(
                got.unwrap(),
                ClientEvent::Resumed { instance: resumed.instance, received: resumed.received }
            ),
            SessionFrame::Closing(_) => prop_assert!(matches!(got, Ok(ClientEvent::Closing(_)))),
            _ => prop_assert!(
                matches!(got, Err(ProtoError::Session(SessionViolation::HandshakeFirst { expected: "resumed", .. }))),
                "{got:?}"
            ),
        }
    }

    #[test]
    fn resume_frames_out_of_place_are_violations(f in resume_frame()) {
        let message = Bytes::from(encode(&f));
        // A master with its token takes acks only: a second token, a resumed it did not
        // ask for and a resume (the master's own frame) are violations.
        let (mut master, mut server) = token_pair();
        let got = master.receive(&message);
        match f.tag() {
            24 => prop_assert!(matches!(got, Ok(ClientEvent::Acked { .. })), "{got:?}"),
            _ => prop_assert!(matches!(got, Err(ProtoError::Session(_))), "{got:?}"),
        }
        // An open server takes acks only; the others are the master's first frame or the
        // server's own.
        let got = server.receive(&message);
        match f.tag() {
            24 => prop_assert!(matches!(got, Ok(ServerEvent::Acked { .. })), "{got:?}"),
            _ => prop_assert!(matches!(got, Err(ProtoError::Session(_))), "{got:?}"),
        }
        // Before the handshake only a resume (with the right magic and version) is taken,
        // by the server; nothing of these by a master waiting for its welcome.
        let mut fresh = ServerSession::new(SessionCodec::new(), 4);
        let got = fresh.receive(&message);
        match &f {
            SessionFrame::Resume(r) if r.check().is_ok() => {
                prop_assert!(matches!(got, Ok(ServerEvent::Resume(_))), "{got:?}");
                prop_assert!(fresh.is_closed());
            }
            SessionFrame::Resume(_) => prop_assert!(got.is_err()),
            _ => prop_assert!(matches!(got, Err(ProtoError::Session(_))), "{got:?}"),
        }
        let mut opening = ClientSession::new(SessionCodec::new());
        opening.open("t").unwrap();
        let got = opening.receive(&message);
        prop_assert!(matches!(got, Err(ProtoError::Session(_))), "{got:?}");
    }

    #[test]
    fn trailing_bytes_after_a_frame_are_an_error(f in session_frame(), extra in vec(any::<u8>(), 1..16)) {
        prop_assume!(f.tag() != 11, "a routed body is opaque: its end is the message's");
        let mut bytes = encode(&f);
        let used = bytes.len() - 4;
        bytes.extend_from_slice(&extra);
        let err = SessionCodec::new().decode(&Bytes::from(bytes)).unwrap_err();
        prop_assert!(
            matches!(err, ProtoError::TrailingBytes { used: u, extra: e } if u == used && e == extra.len()),
            "{err}"
        );
    }
}

#[test]
fn slave_frame_tags_and_unknown_tags_are_no_session_frames() {
    for tag in (0..6).chain([SessionFrame::END_TAG, SessionFrame::END_TAG + 1, u32::MAX]) {
        let err = SessionCodec::new()
            .decode(&Bytes::copy_from_slice(&tag.to_le_bytes()))
            .unwrap_err();
        assert!(
            matches!(err, ProtoError::NotASessionFrame { tag: t } if t == tag),
            "{err}"
        );
    }
}

#[test]
fn short_messages_are_malformed() {
    let codec = SessionCodec::new();
    for m in [&[][..], &[6], &[11, 0, 0], &[11, 0, 0, 0, 1, 0, 0]] {
        let err = codec.decode(&Bytes::copy_from_slice(m)).unwrap_err();
        assert!(matches!(err, ProtoError::Malformed { .. }), "{m:?}: {err}");
    }
}

#[test]
fn oversize_messages_are_refused_before_decoding() {
    for max in [0usize, 1, 64] {
        let codec = SessionCodec::with_max_frame_len(max);
        let limit = codec.max_message_len();
        // Garbage one byte over the limit is refused for its size, not decoded; so is a
        // well-formed routed frame.
        let mut routed = BytesMut::new();
        routed.put_u32_le(11);
        routed.put_u32_le(1);
        routed.put_bytes(0, max + 1);
        for message in [Bytes::from(vec![0xff; limit + 1]), routed.freeze()] {
            let err = codec.decode(&message).unwrap_err();
            assert!(
                matches!(err, ProtoError::FrameTooLarge { len, max: m } if len == limit as u64 + 1 && m == limit),
                "max {max}: {err}"
            );
            let by_client = ClientSession::new(codec).receive(&message);
            let by_server = ServerSession::new(codec, 4).receive(&message);
            for got in [by_client.map(drop), by_server.map(drop)] {
                assert!(
                    matches!(got, Err(ProtoError::FrameTooLarge { .. })),
                    "{got:?}"
                );
            }
        }
    }
}
