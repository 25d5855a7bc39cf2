//! User data as already-encoded bytes.

use bytes::Bytes;
use serde::de::{DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

use crate::{ProtoError, wire};

/// User data, encoded once, carried as opaque bytes.
///
/// bincode is not self-describing, so the sender encodes a value with [`Payload::encode`]
/// and the receiver names the type it expects with [`Payload::decode`]. Cloning a payload
/// is a reference-count increment: a broadcast sends the same bytes to every slave.
///
/// ```
/// use distio_proto::Payload;
///
/// let payload = Payload::encode(&("pi", 3.14_f64))?;
/// let copy = payload.clone(); // no re-encoding, no copy of the bytes
/// let (name, value): (String, f64) = copy.decode()?;
/// assert_eq!((name.as_str(), value), ("pi", 3.14));
///
/// // Asking for the wrong type is an error that names the type, never a panic.
/// let err = payload.decode::<u8>().unwrap_err();
/// assert!(err.to_string().contains("u8"));
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Payload(Bytes);

impl Payload {
    /// Encodes `value` into a payload.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, ProtoError> {
        wire::encode_to_bytes(value)
            .map(Payload)
            .map_err(|err| ProtoError::PayloadEncode {
                type_name: std::any::type_name::<T>(),
                reason: err.to_string(),
            })
    }

    /// Decodes the payload into a `T`; every byte must be used.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ProtoError> {
        wire::decode_exact(&self.0).map_err(|failure| ProtoError::PayloadDecode {
            expected: std::any::type_name::<T>(),
            reason: failure.into_reason(),
        })
    }

    /// The payload of a `Vec<T>` made from the payloads of its items, without decoding or
    /// re-encoding them (scatter's chunk mode sends parts of a list this way).
    ///
    /// ```
    /// use distio_proto::Payload;
    /// let items = [Payload::encode(&1u64)?, Payload::encode(&2u64)?];
    /// assert_eq!(Payload::sequence(&items).decode::<Vec<u64>>()?, vec![1, 2]);
    /// # Ok::<(), distio_proto::ProtoError>(())
    /// ```
    pub fn sequence(items: &[Payload]) -> Self {
        Payload(Bytes::from(wire::sequence(
            items.iter().map(|p| &p.0[..]),
            items.len(),
        )))
    }

    /// The payload of `()`: zero bytes.
    pub const fn empty() -> Self {
        Payload(Bytes::new())
    }

    /// Wraps bytes that are already an encoding (for example from another distio peer).
    pub const fn from_bytes(bytes: Bytes) -> Self {
        Payload(bytes)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The encoded bytes, by value.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length of the encoding, in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the encoding is empty (the payload of `()`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        write!(f, "Payload({} bytes", self.0.len())?;
        if !self.0.is_empty() {
            let head = &self.0[..self.0.len().min(SHOWN)];
            write!(f, ": {head:02x?}")?;
            if self.0.len() > SHOWN {
                f.write_str("…")?;
            }
        }
        f.write_str(")")
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("payload bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                Ok(Payload(wire::share_or_copy(v)))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
                Ok(Payload(Bytes::from(v)))
            }
        }
        // `deserialize_bytes` borrows from the frame, so the length is checked against the
        // bytes actually present before anything is copied; large payloads are not copied at
        // all but share the frame's buffer.
        de.deserialize_bytes(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_empty() {
        assert!(Payload::encode(&()).unwrap().is_empty());
        assert_eq!(Payload::empty().decode::<()>().unwrap(), ());
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let p = Payload::encode(&(1u8, 2u8)).unwrap();
        let err = p.decode::<u8>().unwrap_err();
        assert!(
            matches!(err, ProtoError::PayloadDecode { expected: "u8", .. }),
            "{err}"
        );
    }

    #[test]
    fn forged_string_length_does_not_allocate() {
        // A u64 length of 2^62 followed by nothing: must fail cleanly.
        let p = Payload::from_bytes(Bytes::from(vec![0, 0, 0, 0, 0, 0, 0, 0x40]));
        assert!(p.decode::<String>().is_err());
        assert!(p.decode::<Vec<u8>>().is_err());
    }

    #[test]
    fn large_payloads_share_the_frame_buffer_small_ones_are_copied() {
        use crate::{Event, Frame, FrameCodec};
        use tokio_util::codec::{Decoder, Encoder};
        for (len, shared) in [(16usize, false), (crate::wire::SHARE_AT_LEAST + 100, true)] {
            let payload = Payload::from_bytes(Bytes::from(vec![9u8; len]));
            let frame = Frame::Event(Event {
                name: "e".into(),
                payload,
            });
            let mut buf = bytes::BytesMut::new();
            FrameCodec::new().encode(&frame, &mut buf).unwrap();
            let start = buf.as_ptr() as usize;
            let end = start + buf.len();
            let Some(Frame::Event(event)) = FrameCodec::new().decode(&mut buf).unwrap() else {
                panic!()
            };
            let at = event.payload.as_bytes().as_ptr() as usize;
            assert_eq!((start..end).contains(&at), shared, "{len}-byte payload");
            assert_eq!(event.payload.len(), len);
        }
    }

    /// Serializes its bytes, failing instead when they are empty, and counts its calls.
    struct Counted<'a> {
        calls: &'a std::cell::Cell<u32>,
        bytes: Vec<u8>,
    }

    impl Serialize for Counted<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.calls.set(self.calls.get() + 1);
            if self.bytes.is_empty() {
                return Err(serde::ser::Error::custom("nothing to serialize"));
            }
            // Element by element, as a `Vec<u8>` is: many small writes.
            self.bytes.serialize(s)
        }
    }

    #[test]
    fn serialize_runs_once_per_encode() {
        let pool = crate::wire::pool::MIN;
        for len in [1, 100, pool - 9, pool, 3 * pool, crate::wire::pool::MAX + 1] {
            let calls = std::cell::Cell::new(0);
            let value = Counted {
                calls: &calls,
                bytes: (0..len).map(|i| i as u8).collect(),
            };
            let payload = Payload::encode(&value).unwrap();
            assert_eq!(calls.get(), 1, "{len} bytes");
            let mut expected = bytes::BytesMut::new();
            crate::wire::encode_capped(&value.bytes, &mut expected, usize::MAX).unwrap();
            assert_eq!(payload.as_bytes(), &expected[..], "{len} bytes");
            assert_eq!(payload.decode::<Vec<u8>>().unwrap(), value.bytes);
        }
    }

    #[test]
    fn a_failing_serialize_runs_once_and_names_the_type() {
        let calls = std::cell::Cell::new(0);
        let err = Payload::encode(&Counted {
            calls: &calls,
            bytes: Vec::new(),
        })
        .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert!(
            matches!(&err, ProtoError::PayloadEncode { type_name, reason }
                if type_name.contains("Counted") && reason.contains("nothing to serialize")),
            "{err}"
        );
    }

    #[test]
    fn debug_is_short() {
        let p = Payload::from_bytes(Bytes::from(vec![7u8; 100]));
        let text = format!("{p:?}");
        assert!(text.starts_with("Payload(100 bytes"), "{text}");
        assert!(text.len() < 120, "{text}");
    }
}
