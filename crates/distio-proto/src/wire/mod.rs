//! The bincode boundary: the only module that names bincode, so the body encoding can be
//! swapped without touching anything else.
//!
//! Encoding: bincode 2 "standard" configuration with **little-endian fixed-width integers**
//! (`u16` = 2 bytes, `u32` = 4, `u64`/lengths = 8, enum tags = `u32`, `bool`/`Option` tags =
//! 1 byte). `docs/protocol.md` spells out every field.
//!
//! Decoding always runs over a borrowed slice through [`bounded`]: strings and byte strings
//! are sliced out of the input (so their length is checked against the bytes present) before
//! they are copied. A hostile length field can never make the decoder allocate more than the
//! input itself holds.

use bincode::config::{Configuration, Fixint, LittleEndian};
use bincode::enc::write::{SizeWriter, Writer};
use bincode::error::{DecodeError, EncodeError};
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;

use crate::ProtoError;

mod bounded;
pub(crate) mod hot;
pub(crate) mod pool;

use bounded::Bounded;

type Config = Configuration<LittleEndian, Fixint>;

const CONFIG: Config = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding();

/// Number of bytes `value` encodes to. Walks the value without copying any byte strings.
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, EncodeError> {
    let mut size = SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, CONFIG)?;
    Ok(size.bytes_written)
}

/// Appends the encoding of `value` to `dst` in one pass and returns its length.
///
/// At most `cap` bytes are stored: once the encoding is longer, the rest is only counted, so
/// the length returned is still exact. When it exceeds `cap`, what was appended is an
/// incomplete prefix that the caller must remove.
pub(crate) fn encode_capped<T: Serialize + ?Sized>(
    value: &T,
    dst: &mut BytesMut,
    cap: usize,
) -> Result<usize, EncodeError> {
    let mut writer = CappedWriter {
        dst,
        cap,
        written: 0,
    };
    bincode::serde::encode_into_writer(value, &mut writer, CONFIG)?;
    Ok(writer.written)
}

/// Encodes `value` in one pass. Large encodings end up in a buffer from this thread's
/// [`pool`], so a busy peer does not allocate (and fault in) a fresh large buffer for every
/// payload; the pooled buffer goes back when the returned bytes are dropped.
pub(crate) fn encode_to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, EncodeError> {
    let mut out = pool::Growing::new();
    bincode::serde::encode_into_writer(value, &mut out, CONFIG)?;
    Ok(out.finish())
}

impl Writer for pool::Growing {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.push(bytes);
        Ok(())
    }
}

/// The encoding of a sequence whose `count` elements are already encoded: the length as a
/// `u64`, then the elements back to back (how the configuration above encodes a `Vec`).
pub(crate) fn sequence<'a>(items: impl Iterator<Item = &'a [u8]> + Clone, count: usize) -> Vec<u8> {
    let len: usize = items.clone().map(<[u8]>::len).sum();
    let mut out = Vec::with_capacity(8 + len);
    out.extend_from_slice(&(count as u64).to_le_bytes());
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// Decodes a `T` that must occupy all of `bytes`.
///
/// Returns the decode error, or `Err(Trailing { used })` when bytes are left over.
pub(crate) fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeFailure> {
    let (Bounded(value), used) =
        bincode::serde::borrow_decode_from_slice::<Bounded<T>, _>(bytes, CONFIG)
            .map_err(DecodeFailure::from_bincode)?;
    if used != bytes.len() {
        return Err(DecodeFailure::Trailing {
            used,
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

/// Payloads at least this long are shared with the frame they arrived in instead of
/// copied. Smaller ones are copied: cheap, and they do not keep a read buffer alive.
pub(crate) const SHARE_AT_LEAST: usize = 4096;

thread_local! {
    /// The body of the frame this thread is decoding, if any.
    static FRAME_BODY: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Runs `decode` with `body` registered as the frame being decoded, so large payloads in
/// it can be shared rather than copied ([`share_or_copy`]).
pub(crate) fn with_frame_body<T>(body: &Bytes, decode: impl FnOnce() -> T) -> T {
    struct Unregister;
    impl Drop for Unregister {
        fn drop(&mut self) {
            FRAME_BODY.with(|b| b.borrow_mut().take());
        }
    }
    FRAME_BODY.with(|b| *b.borrow_mut() = Some(body.clone()));
    let _unregister = Unregister;
    decode()
}

/// Bytes holding `slice`: a shared view when it is large and lies inside the frame being
/// decoded, a copy otherwise.
pub(crate) fn share_or_copy(slice: &[u8]) -> Bytes {
    if slice.len() >= SHARE_AT_LEAST {
        let shared = FRAME_BODY.with(|b| {
            let body = b.borrow();
            let body = body.as_ref()?;
            let (start, base) = (slice.as_ptr() as usize, body.as_ptr() as usize);
            let inside = start >= base && start + slice.len() <= base + body.len();
            // `slice_ref` requires exactly this containment, checked just above.
            inside.then(|| body.slice_ref(slice))
        });
        if let Some(shared) = shared {
            return shared;
        }
    }
    Bytes::copy_from_slice(slice)
}

/// Why [`decode_exact`] failed, sorted into the cases callers report differently.
#[derive(Debug)]
pub(crate) enum DecodeFailure {
    /// An enum carried an index its type does not define.
    UnknownVariant(String),
    /// The bytes were not an encoding of the type.
    Malformed(String),
    /// The value decoded but bytes were left over.
    Trailing { used: usize, extra: usize },
}

impl DecodeFailure {
    fn from_bincode(err: DecodeError) -> Self {
        let text = err.to_string();
        match err {
            DecodeError::UnexpectedVariant { .. } => DecodeFailure::UnknownVariant(text),
            // serde reports an out-of-range enum index through its own error type.
            DecodeError::OtherString(ref msg) if msg.contains("variant index") => {
                DecodeFailure::UnknownVariant(text)
            }
            _ => DecodeFailure::Malformed(text),
        }
    }

    /// The failure as text, for payload errors that do not distinguish the cases.
    pub(crate) fn into_reason(self) -> String {
        match self {
            DecodeFailure::UnknownVariant(text) | DecodeFailure::Malformed(text) => text,
            DecodeFailure::Trailing { used, extra } => {
                format!("{extra} bytes left over after decoding {used}")
            }
        }
    }

    /// The failure as a frame-level error.
    pub(crate) fn into_frame_error(self) -> ProtoError {
        match self {
            DecodeFailure::UnknownVariant(detail) => ProtoError::UnknownVariant { detail },
            DecodeFailure::Malformed(reason) => ProtoError::Malformed { reason },
            DecodeFailure::Trailing { used, extra } => ProtoError::TrailingBytes { used, extra },
        }
    }
}

/// A bincode writer appending to a `BytesMut` until `cap` bytes are written, then only
/// counting.
struct CappedWriter<'a> {
    dst: &'a mut BytesMut,
    cap: usize,
    written: usize,
}

impl Writer for CappedWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.written = self.written.saturating_add(bytes.len());
        if self.written <= self.cap {
            self.dst.put_slice(bytes);
        }
        Ok(())
    }
}
