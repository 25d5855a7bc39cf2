//! The length-prefixed frame codec.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{Frame, ProtoError, wire};

/// The default [`FrameCodec`] limit on a frame body: 64 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// Encodes and decodes [`Frame`]s as a big-endian `u32` body length followed by the
/// bincode body.
///
/// The body length is checked against the limit before anything is allocated for it on
/// decode; on encode, no more than the limit is ever written. A truncated frame waits for
/// more bytes; anything else that is wrong is a [`ProtoError`], never a panic.
///
/// The [`Decoder`] and [`Encoder`] implementations serve byte streams. A transport that
/// frames messages itself (a WebSocket) carries exactly the body:
/// [`encode_body`](Self::encode_body), [`decode_body`](Self::decode_body) and
/// [`decode_body_bytes`](Self::decode_body_bytes) write and read it with the same limit.
///
/// ```
/// use bytes::BytesMut;
/// use distio_proto::{Control, Frame, FrameCodec, ProtoError};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = FrameCodec::new();
/// let mut buf = BytesMut::new();
/// codec.encode(Frame::Control(Control::Ping(1)), &mut buf)?;
/// assert_eq!(codec.decode(&mut buf)?, Some(Frame::Control(Control::Ping(1))));
///
/// // A header announcing more than the limit is refused at once.
/// let mut small = FrameCodec::with_max_frame_len(16);
/// let mut hostile = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
/// assert!(matches!(small.decode(&mut hostile), Err(ProtoError::FrameTooLarge { .. })));
/// # Ok::<(), ProtoError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl FrameCodec {
    /// A codec with the [`DEFAULT_MAX_FRAME_LEN`] limit.
    pub const fn new() -> Self {
        FrameCodec {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// A codec refusing frame bodies longer than `max` bytes (at most `u32::MAX`, the
    /// largest length the prefix can express).
    pub const fn with_max_frame_len(max: usize) -> Self {
        let max = if max > u32::MAX as usize {
            u32::MAX as usize
        } else {
            max
        };
        FrameCodec { max_frame_len: max }
    }

    /// The limit on a frame body, in bytes.
    pub const fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// The body length `frame` encodes to, or [`ProtoError::FrameTooLarge`] if that is over
    /// the limit. Walks the frame without copying payload bytes.
    ///
    /// ```
    /// use distio_proto::{Control, Frame, FrameCodec};
    /// assert_eq!(FrameCodec::new().encoded_len(&Frame::Control(Control::Close))?, 8);
    /// # Ok::<(), distio_proto::ProtoError>(())
    /// ```
    pub fn encoded_len(&self, frame: &Frame) -> Result<usize, ProtoError> {
        let len = match wire::hot::encoded_len(frame) {
            Some(len) => len,
            None => wire::encoded_len(frame).map_err(|err| ProtoError::FrameEncode {
                reason: err.to_string(),
            })?,
        };
        if len > self.max_frame_len {
            return Err(self.too_large(len as u64));
        }
        Ok(len)
    }

    /// Appends the body of `frame` to `dst`, without the length prefix: exactly the bytes
    /// the [`Encoder`] writes after it. For a transport that frames messages itself, such
    /// as a WebSocket, where one message carries one body.
    ///
    /// A body over the limit is [`ProtoError::FrameTooLarge`], and `dst` is left as it was.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use distio_proto::{Control, Frame, FrameCodec, ProtoError};
    ///
    /// let codec = FrameCodec::new();
    /// let mut buf = BytesMut::new();
    /// codec.encode_body(&Frame::Control(Control::Ping(7)), &mut buf)?;
    /// let message = buf.split().freeze(); // e.g. the data of one binary WebSocket message
    /// assert_eq!(codec.decode_body_bytes(&message)?, Frame::Control(Control::Ping(7)));
    ///
    /// let small = FrameCodec::with_max_frame_len(4);
    /// let err = small.encode_body(&Frame::Control(Control::Ping(7)), &mut buf).unwrap_err();
    /// assert!(matches!(err, ProtoError::FrameTooLarge { len: 16, max: 4 }));
    /// assert!(buf.is_empty());
    /// # Ok::<(), ProtoError>(())
    /// ```
    pub fn encode_body(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.encode_frame(frame, false, dst)
    }

    /// Decodes one frame from `body`, a complete frame body without the length prefix (one
    /// WebSocket message, say). Payload bytes are copied out of `body`; with a [`Bytes`]
    /// body, [`decode_body_bytes`](Self::decode_body_bytes) shares large ones instead.
    ///
    /// A body over the limit is [`ProtoError::FrameTooLarge`] before anything is decoded;
    /// bytes left after the frame are [`ProtoError::TrailingBytes`]; a truncated or garbled
    /// body is another [`ProtoError`], never a panic.
    ///
    /// ```
    /// use distio_proto::{Control, Frame, FrameCodec, ProtoError};
    ///
    /// let codec = FrameCodec::new();
    /// let body = [4, 0, 0, 0, 1, 0, 0, 0]; // Control, Shutdown
    /// assert_eq!(codec.decode_body(&body)?, Frame::Control(Control::Shutdown));
    ///
    /// let err = codec.decode_body(&[4, 0, 0, 0, 1, 0, 0, 0, 0xAA]).unwrap_err();
    /// assert!(matches!(err, ProtoError::TrailingBytes { used: 8, extra: 1 }));
    /// assert!(codec.decode_body(&body[..6]).is_err());
    /// let small = FrameCodec::with_max_frame_len(4);
    /// assert!(matches!(small.decode_body(&body), Err(ProtoError::FrameTooLarge { .. })));
    /// # Ok::<(), ProtoError>(())
    /// ```
    pub fn decode_body(&self, body: &[u8]) -> Result<Frame, ProtoError> {
        self.check_len(body.len())?;
        decode_body(body)
    }

    /// Like [`decode_body`](Self::decode_body), but large payloads in the frame share
    /// `body`'s buffer instead of being copied out of it, as the stream [`Decoder`] does.
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use distio_proto::{Event, Frame, FrameCodec, Payload, ProtoError};
    ///
    /// let codec = FrameCodec::new();
    /// let event = Frame::Event(Event {
    ///     name: "chunk".into(),
    ///     payload: Payload::from_bytes(Bytes::from(vec![1u8; 64 * 1024])),
    /// });
    /// let mut buf = BytesMut::new();
    /// codec.encode_body(&event, &mut buf)?;
    /// let body: Bytes = buf.freeze();
    /// let Frame::Event(back) = codec.decode_body_bytes(&body)? else { unreachable!() };
    /// let inside = body.as_ptr_range();
    /// assert!(inside.contains(&back.payload.as_bytes().as_ptr()), "shared, not copied");
    /// # Ok::<(), ProtoError>(())
    /// ```
    pub fn decode_body_bytes(&self, body: &Bytes) -> Result<Frame, ProtoError> {
        self.check_len(body.len())?;
        decode_shared(body)
    }

    /// Appends `frame` to `dst`, with its length prefix when `prefixed`. On error `dst` is
    /// left as it was.
    fn encode_frame(
        &self,
        frame: &Frame,
        prefixed: bool,
        dst: &mut BytesMut,
    ) -> Result<(), ProtoError> {
        let header_len = if prefixed { HEADER_LEN } else { 0 };
        if let Some(len) = wire::hot::encoded_len(frame) {
            self.check_len(len)?;
            // `len <= max_frame_len <= u32::MAX`, so the cast is exact.
            let header = (len as u32).to_be_bytes();
            dst.reserve(header_len + len);
            if wire::hot::encode(frame, &header[..header_len], len, dst) {
                return Ok(());
            }
        }
        // One pass through serde, storing at most the limit, then the prefix filled in.
        let start = dst.len();
        dst.put_bytes(0, header_len);
        let written = wire::encode_capped(frame, dst, self.max_frame_len)
            .map_err(|err| ProtoError::FrameEncode {
                reason: err.to_string(),
            })
            .and_then(|len| self.check_len(len).map(|()| len));
        match written {
            Ok(len) => {
                // Checked against the limit, so the cast is exact.
                dst[start..start + header_len]
                    .copy_from_slice(&(len as u32).to_be_bytes()[..header_len]);
                Ok(())
            }
            Err(err) => {
                dst.truncate(start);
                Err(err)
            }
        }
    }

    /// [`ProtoError::FrameTooLarge`] when a body of `len` bytes is over the limit.
    fn check_len(&self, len: usize) -> Result<(), ProtoError> {
        if len > self.max_frame_len {
            return Err(self.too_large(len as u64));
        }
        Ok(())
    }

    fn too_large(&self, len: u64) -> ProtoError {
        ProtoError::FrameTooLarge {
            len,
            max: self.max_frame_len,
        }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new()
    }
}

/// Decodes one frame body (the bytes after the length prefix): requests and responses of
/// the usual shape by hand, everything else (and every error) through serde.
pub(crate) fn decode_body(body: &[u8]) -> Result<Frame, ProtoError> {
    if let Some(frame) = wire::hot::decode(body) {
        return Ok(frame);
    }
    if let Some(tag) = body.first_chunk::<4>().map(|b| u32::from_le_bytes(*b))
        && tag >= Frame::KINDS
    {
        return Err(ProtoError::UnknownFrame {
            tag,
            known: Frame::KINDS,
        });
    }
    wire::decode_exact::<Frame>(body).map_err(wire::DecodeFailure::into_frame_error)
}

/// [`decode_body`] over a body whose large payloads may share its buffer.
fn decode_shared(body: &Bytes) -> Result<Frame, ProtoError> {
    if body.len() < wire::SHARE_AT_LEAST {
        // Too small to hold a payload worth sharing.
        return decode_body(body);
    }
    wire::with_frame_body(body, || decode_body(body))
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        let Some(header) = src.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header) as usize;
        self.check_len(len)?;
        let needed = HEADER_LEN + len;
        if src.len() < needed {
            // Only now, with the length known to be acceptable, make room for the rest.
            src.reserve(needed - src.len());
            return Ok(None);
        }
        if len < wire::SHARE_AT_LEAST {
            // Too small to hold a payload worth sharing: decode in place, then move on.
            let frame = decode_body(&src[HEADER_LEN..needed]);
            src.advance(needed);
            return frame.map(Some);
        }
        src.advance(HEADER_LEN);
        decode_shared(&src.split_to(len).freeze()).map(Some)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.encode_frame(frame, true, dst)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.encode(&frame, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Control;

    #[test]
    fn truncated_frame_waits() {
        let mut codec = FrameCodec::new();
        let mut full = BytesMut::new();
        codec
            .encode(Frame::Control(Control::Close), &mut full)
            .unwrap();
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert!(codec.decode(&mut part).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn oversize_header_does_not_reserve() {
        let mut codec = FrameCodec::with_max_frame_len(1024);
        let mut buf = BytesMut::with_capacity(8);
        buf.put_u32(1025);
        let before = buf.capacity();
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                ProtoError::FrameTooLarge {
                    len: 1025,
                    max: 1024
                }
            ),
            "{err}"
        );
        assert_eq!(buf.capacity(), before);
        assert!(err.to_string().contains("1025") && err.to_string().contains("1024"));
    }

    #[test]
    fn oversize_frame_is_not_encoded() {
        let mut codec = FrameCodec::with_max_frame_len(8);
        let mut buf = BytesMut::new();
        let frame = Frame::Event(crate::Event {
            name: "big".into(),
            payload: crate::Payload::encode(&vec![0u8; 64]).unwrap(),
        });
        let err = codec.encode(&frame, &mut buf).unwrap_err();
        let len = FrameCodec::new().encoded_len(&frame).unwrap() as u64;
        assert!(
            matches!(err, ProtoError::FrameTooLarge { max: 8, len: l } if l == len),
            "{err}"
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn an_oversize_frame_stores_at_most_the_limit() {
        let codec = FrameCodec::with_max_frame_len(1024);
        let frame = Frame::Event(crate::Event {
            name: "big".into(),
            payload: crate::Payload::from_bytes(vec![1u8; 1 << 20].into()),
        });
        for prefixed in [true, false] {
            let mut buf = BytesMut::from(&b"kept"[..]);
            let err = codec.encode_frame(&frame, prefixed, &mut buf).unwrap_err();
            assert!(
                matches!(err, ProtoError::FrameTooLarge { len, max: 1024 } if len == 4 + 8 + 3 + 8 + (1 << 20)),
                "{err}"
            );
            assert_eq!(&buf[..], b"kept");
            assert!(buf.capacity() <= 4 * 1024, "{}", buf.capacity());
        }
    }

    #[test]
    fn a_frame_at_the_limit_is_encoded() {
        let frame = Frame::Event(crate::Event {
            name: "e".into(),
            payload: crate::Payload::from_bytes(vec![1u8; 100].into()),
        });
        let len = FrameCodec::new().encoded_len(&frame).unwrap();
        let mut codec = FrameCodec::with_max_frame_len(len);
        let mut buf = BytesMut::new();
        codec.encode(&frame, &mut buf).unwrap();
        assert_eq!(buf.len(), HEADER_LEN + len);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame.clone()));
        let mut body = BytesMut::new();
        codec.encode_body(&frame, &mut body).unwrap();
        assert_eq!(codec.decode_body(&body).unwrap(), frame);
        let mut smaller = FrameCodec::with_max_frame_len(len - 1);
        let err = smaller.encode(&frame, &mut buf).unwrap_err();
        assert!(matches!(err, ProtoError::FrameTooLarge { .. }), "{err}");
        assert!(buf.is_empty());
        let err = smaller.encode_body(&frame, &mut body).unwrap_err();
        assert!(matches!(err, ProtoError::FrameTooLarge { .. }), "{err}");
        assert_eq!(body.len(), len);
    }

    #[test]
    fn unknown_tag_is_typed() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        buf.put_u32(4);
        buf.put_u32_le(42);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, ProtoError::UnknownFrame { tag: 42, .. }),
            "{err}"
        );
    }

    #[test]
    fn unknown_nested_variant_is_typed() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        buf.put_u32(8);
        buf.put_u32_le(4); // Frame::Control
        buf.put_u32_le(9); // no such Control
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(err, ProtoError::UnknownVariant { .. }), "{err}");
    }

    #[test]
    fn trailing_bytes_are_typed() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        buf.put_u32(9);
        buf.put_u32_le(4); // Frame::Control
        buf.put_u32_le(0); // Control::Close
        buf.put_u8(0xAA);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, ProtoError::TrailingBytes { used: 8, extra: 1 }),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        buf.put_u32(2);
        buf.put_u16(0xffff);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(err, ProtoError::Malformed { .. }), "{err}");
    }
}
