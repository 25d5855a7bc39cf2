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

/// Appends `header` (the length prefix, or nothing when only the body is wanted) and the
/// body of `frame` to `dst` if it is a frame handled here (the ones [`encoded_len`]
/// measures, `len` being what it measured); returns false, writing nothing, for the others.
/// A small frame is assembled on the stack and appended with one copy.
pub(crate) fn encode(frame: &Frame, header: &[u8], len: usize, dst: &mut BytesMut) -> bool {
    if !matches!(frame, Frame::Request(_) | Frame::Response(_)) {
        return false;
    }
    if len + header.len() <= STAGED {
        let mut staged = Staged {
            buf: [0; STAGED],
            len: 0,
        };
        staged.put(header);
        write(frame, &mut staged);
        dst.put_slice(staged.bytes());
    } else {
        dst.put_slice(header);
        write(frame, dst);
    }
    true
}

/// Frames up to this size (with their prefix) are assembled on the stack.
const STAGED: usize = 256;

/// Where an encoding goes.
trait Out {
    fn put(&mut self, bytes: &[u8]);
}

impl Out for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
}

/// A small frame being assembled before it is appended in one piece.
struct Staged {
    buf: [u8; STAGED],
    len: usize,
}

impl Staged {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Out for Staged {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        // Sized by `encoded_len` before anything is put, so it always fits.
        if let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            dst.copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }
}

fn write(frame: &Frame, out: &mut impl Out) {
    match frame {
        Frame::Request(request) => {
            out.put(&REQUEST.to_le_bytes());
            out.put(&request.id.to_le_bytes());
            put_bytes(out, request.task.as_bytes());
            put_bytes(out, request.payload.as_bytes());
            put_meta(out, &request.meta);
        }
        Frame::Response(response) => {
            out.put(&RESPONSE.to_le_bytes());
            out.put(&response.request.to_le_bytes());
            out.put(&response.slave.to_le_bytes());
            match &response.outcome {
                Ok(payload) => {
                    out.put(&0u32.to_le_bytes());
                    put_bytes(out, payload.as_bytes());
                }
                Err(error) => {
                    out.put(&1u32.to_le_bytes());
                    out.put(&(error.kind as u32).to_le_bytes());
                    put_bytes(out, error.message.as_bytes());
                }
            }
        }
        _ => {}
    }
}

fn put_bytes(out: &mut impl Out, bytes: &[u8]) {
    out.put(&(bytes.len() as u64).to_le_bytes());
    out.put(bytes);
}

fn put_meta(out: &mut impl Out, meta: &Metadata) {
    match meta.timeout {
        None => out.put(&[0]),
        Some(timeout) => {
            out.put(&[1]);
            out.put(&timeout.as_secs().to_le_bytes());
            out.put(&timeout.subsec_nanos().to_le_bytes());
        }
    }
    match meta.catch_all {
        None => out.put(&[0]),
        Some(flag) => out.put(&[1, u8::from(flag)]),
    }
    out.put(&(meta.extra.len() as u64).to_le_bytes());
    for (key, value) in &meta.extra {
        put_bytes(out, key.as_bytes());
        put_bytes(out, value.as_bytes());
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
                    kind: *ErrorKind::ALL.get(usize::try_from(r.u32()?).ok()?)?,
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
        super::super::encode_capped(frame, &mut body, usize::MAX).expect("every frame encodes");
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
            let mut body = BytesMut::new();
            let measured = encoded_len(&f);
            let len = measured.unwrap_or(0);
            let handled = encode(&f, &(len as u32).to_be_bytes(), len, &mut ours);
            prop_assert_eq!(handled, measured.is_some());
            prop_assert_eq!(encode(&f, &[], len, &mut body), handled);
            match measured {
                Some(len) => {
                    prop_assert_eq!(&ours[..4], &(len as u32).to_be_bytes()[..]);
                    prop_assert_eq!(&ours[4..], &expected[..]);
                    prop_assert_eq!(&body[..], &expected[..]);
                    prop_assert_eq!(len, expected.len());
                }
                None => {
                    prop_assert!(ours.is_empty() && body.is_empty());
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
    fn frames_too_large_to_stage_are_written_in_place_alike() {
        let big = Payload::from_bytes(vec![5u8; 3 * STAGED].into());
        let frames = [
            Frame::Request(Request {
                id: 9,
                task: "t".repeat(STAGED),
                payload: big.clone(),
                meta: Metadata::new()
                    .with_timeout(Duration::from_millis(1500))
                    .with_catch_all(false)
                    .with_extra("k", big.clone()),
            }),
            Frame::Response(Response {
                request: 9,
                slave: 2,
                outcome: Ok(big),
            }),
            Frame::Response(Response {
                request: 9,
                slave: 2,
                outcome: Err(TaskError::new(ErrorKind::TimedOut, "m".repeat(STAGED))),
            }),
        ];
        for frame in frames {
            let len = encoded_len(&frame).expect("a hot frame");
            assert!(len > STAGED);
            let mut ours = BytesMut::new();
            assert!(encode(&frame, &(len as u32).to_be_bytes(), len, &mut ours));
            assert_eq!(ours[4..], serde_body(&frame)[..], "{frame:?}");
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
