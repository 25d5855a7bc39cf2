//! Hand-written encoding and decoding of the two frames every request carries: `Request`
//! and `Response`.
//!
//! They are most of the traffic, and going through serde costs them a size walk before
//! encoding and several layers of visitors when decoding. The layout written and read here
//! is exactly the one bincode produces for them (`docs/protocol.md`); the tests below check
//! that against the serde path on generated frames.
//!
//! Decoding only takes the common shape: a request without `extra` entries, a response
//! with a known error kind. Anything else, including every malformed body, returns `None`
//! and the caller decodes it the general way, which also produces the precise error.

use bytes::{BufMut, BytesMut};
use std::time::Duration;

use super::share_or_copy;
use crate::{ErrorKind, Frame, Metadata, Payload, Request, Response, TaskError};

/// The `Frame` variant indices of the frames handled here.
const REQUEST: u32 = 2;
const RESPONSE: u32 = 3;

/// `ErrorKind`s by variant index.
const KINDS: [ErrorKind; 7] = [
    ErrorKind::UnknownTask,
    ErrorKind::HandlerFailed,
    ErrorKind::HandlerPanicked,
    ErrorKind::Paused,
    ErrorKind::TimedOut,
    ErrorKind::SlaveExited,
    ErrorKind::Closed,
];

/// Bytes of a `u64` length prefix.
const LEN: usize = 8;

/// The body length of `frame` when it is handled here; `None` for other kinds. Saturates
/// instead of overflowing, so an absurd size is still refused by the frame limit.
pub(crate) fn encoded_len(frame: &Frame) -> Option<usize> {
    let len = match frame {
        Frame::Request(request) => (4 + 8 + LEN + LEN)
            .saturating_add(request.task.len())
            .saturating_add(request.payload.len())
            .saturating_add(meta_len(&request.meta)),
        Frame::Response(response) => {
            let outcome = match &response.outcome {
                Ok(payload) => LEN.saturating_add(payload.len()),
                Err(error) => (4 + LEN).saturating_add(error.message.len()),
            };
            (4 + 8 + 8 + 4usize).saturating_add(outcome)
        }
        _ => return None,
    };
    Some(len)
}

fn meta_len(meta: &Metadata) -> usize {
    let timeout = if meta.timeout.is_some() { 1 + 12 } else { 1 };
    let catch_all = if meta.catch_all.is_some() { 2 } else { 1 };
    meta.extra
        .iter()
        .fold(timeout + catch_all + LEN, |sum, (key, value)| {
            sum.saturating_add(2 * LEN)
                .saturating_add(key.len())
                .saturating_add(value.len())
        })
}

/// Appends the body of `frame` to `dst` if it is a frame handled here (the ones
/// [`encoded_len`] measures); returns false, writing nothing, for the others.
pub(crate) fn encode(frame: &Frame, dst: &mut BytesMut) -> bool {
    match frame {
        Frame::Request(request) => {
            dst.put_u32_le(REQUEST);
            dst.put_u64_le(request.id);
            put_bytes(dst, request.task.as_bytes());
            put_bytes(dst, request.payload.as_bytes());
            put_meta(dst, &request.meta);
        }
        Frame::Response(response) => {
            dst.put_u32_le(RESPONSE);
            dst.put_u64_le(response.request);
            dst.put_u64_le(response.slave);
            match &response.outcome {
                Ok(payload) => {
                    dst.put_u32_le(0);
                    put_bytes(dst, payload.as_bytes());
                }
                Err(error) => {
                    dst.put_u32_le(1);
                    dst.put_u32_le(error.kind as u32);
                    put_bytes(dst, error.message.as_bytes());
                }
            }
        }
        _ => return false,
    }
    true
}

fn put_bytes(dst: &mut BytesMut, bytes: &[u8]) {
    dst.put_u64_le(bytes.len() as u64);
    dst.put_slice(bytes);
}

fn put_meta(dst: &mut BytesMut, meta: &Metadata) {
    match meta.timeout {
        None => dst.put_u8(0),
        Some(timeout) => {
            dst.put_u8(1);
            dst.put_u64_le(timeout.as_secs());
            dst.put_u32_le(timeout.subsec_nanos());
        }
    }
    match meta.catch_all {
        None => dst.put_u8(0),
        Some(flag) => {
            dst.put_u8(1);
            dst.put_u8(u8::from(flag));
        }
    }
    dst.put_u64_le(meta.extra.len() as u64);
    for (key, value) in &meta.extra {
        put_bytes(dst, key.as_bytes());
        put_bytes(dst, value.as_bytes());
    }
}

/// Decodes a request or response body of the common shape; `None` for anything else.
pub(crate) fn decode(body: &[u8]) -> Option<Frame> {
    let mut r = Reader(body);
    let frame = match r.u32()? {
        REQUEST => Frame::Request(Request {
            id: r.u64()?,
            task: std::str::from_utf8(r.bytes()?).ok()?.to_owned(),
            payload: Payload::from_bytes(share_or_copy(r.bytes()?)),
            meta: r.meta()?,
        }),
        RESPONSE => Frame::Response(Response {
            request: r.u64()?,
            slave: r.u64()?,
            outcome: match r.u32()? {
                0 => Ok(Payload::from_bytes(share_or_copy(r.bytes()?))),
                1 => Err(TaskError {
                    kind: *KINDS.get(usize::try_from(r.u32()?).ok()?)?,
                    message: std::str::from_utf8(r.bytes()?).ok()?.to_owned(),
                }),
                _ => return None,
            },
        }),
        _ => return None,
    };
    r.0.is_empty().then_some(frame)
}

/// The unread rest of a body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    /// A `u64` length, then that many bytes (checked against what is there).
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (bytes, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(bytes)
    }

    /// Metadata without `extra` entries.
    fn meta(&mut self) -> Option<Metadata> {
        let timeout = match self.u8()? {
            0 => None,
            1 => {
                let (secs, nanos) = (self.u64()?, self.u32()?);
                // Larger nanoseconds are legal but carry into the seconds: the general path.
                if nanos >= 1_000_000_000 {
                    return None;
                }
                Some(Duration::new(secs, nanos))
            }
            _ => return None,
        };
        let catch_all = match self.u8()? {
            0 => None,
            1 => Some(match self.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            }),
            _ => return None,
        };
        if self.u64()? != 0 {
            return None;
        }
        Some(Metadata {
            timeout,
            catch_all,
            extra: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_strategies::frame;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn serde_body(frame: &Frame) -> BytesMut {
        let mut body = BytesMut::new();
        super::super::encode_into(frame, &mut body).expect("every frame encodes");
        body
    }

    fn serde_decode(body: &[u8]) -> Option<Frame> {
        super::super::decode_exact::<Frame>(body).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn encoding_is_bincodes(f in frame()) {
            let expected = serde_body(&f);
            let mut ours = BytesMut::new();
            let handled = encode(&f, &mut ours);
            prop_assert_eq!(handled, encoded_len(&f).is_some());
            match encoded_len(&f) {
                Some(len) => {
                    prop_assert_eq!(&ours[..], &expected[..]);
                    prop_assert_eq!(len, expected.len());
                }
                None => {
                    prop_assert!(ours.is_empty());
                    prop_assert!(!matches!(f, Frame::Request(_) | Frame::Response(_)));
                }
            }
        }

        #[test]
        fn decoding_agrees_with_bincode(f in frame()) {
            let body = serde_body(&f);
            let common = match &f {
                Frame::Request(r) => r.meta.extra.is_empty(),
                Frame::Response(_) => true,
                _ => false,
            };
            match decode(&body) {
                Some(ours) => prop_assert_eq!(ours, f),
                None => prop_assert!(!common, "a common frame fell back: {:?}", f),
            }
        }

        #[test]
        fn whatever_it_accepts_bincode_accepts_the_same(
            f in frame(),
            flips in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut body = serde_body(&f).to_vec();
            for (at, byte) in flips {
                let i = at.index(body.len());
                body[i] ^= byte;
            }
            body.truncate(cut.index(body.len() + 1));
            if let Some(ours) = decode(&body) {
                prop_assert_eq!(Some(ours), serde_decode(&body));
            }
        }

        #[test]
        fn random_bodies_are_decoded_alike(mut body in vec(any::<u8>(), 0..96), tag in 2u32..4) {
            if body.len() >= 4 {
                body[..4].copy_from_slice(&tag.to_le_bytes());
            }
            if let Some(ours) = decode(&body) {
                prop_assert_eq!(Some(ours), serde_decode(&body));
            }
        }
    }

    #[test]
    fn carried_nanoseconds_and_extras_take_the_general_path() {
        let request = Frame::Request(Request {
            id: 1,
            task: "t".into(),
            payload: Payload::empty(),
            meta: Metadata::new().with_extra("k", Payload::empty()),
        });
        assert!(decode(&serde_body(&request)).is_none());
        let mut body = serde_body(&Frame::Request(Request {
            id: 1,
            task: "t".into(),
            payload: Payload::empty(),
            meta: Metadata::new().with_timeout(Duration::new(1, 0)),
        }));
        // Nanoseconds sit after tag (4), id (8), task (8 + 1), payload (8), option tag (1),
        // seconds (8).
        let at = 4 + 8 + 9 + 8 + 1 + 8;
        body[at..at + 4].copy_from_slice(&1_500_000_000u32.to_le_bytes());
        assert!(decode(&body).is_none());
        let Some(Frame::Request(general)) = serde_decode(&body) else {
            panic!("bincode carries the nanoseconds")
        };
        assert_eq!(general.meta.timeout, Some(Duration::from_millis(2500)));
    }
}
