//! Every frame survives encode → decode, however the bytes are chunked.

mod common;

use common::{decode_chunks, encode_all, frame};
use distio_proto::Payload;
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
    fn payload_values_round_trip(v in any::<(String, Vec<u64>, Option<i32>, bool)>()) {
        let p = Payload::encode(&v).unwrap();
        prop_assert_eq!(p.decode::<(String, Vec<u64>, Option<i32>, bool)>().unwrap(), v);
    }
}
