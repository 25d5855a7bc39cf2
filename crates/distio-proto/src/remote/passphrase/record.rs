//! Sealed records: after the passphrase handshake, every WebSocket message is the session
//! message it carried before, encrypted and authenticated with AES-256-GCM under the
//! direction's key, with the direction's record counter as the nonce.

use std::fmt;

use bytes::{Bytes, BytesMut};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::ProtoError;

/// Bytes a sealed record adds to the message it carries (the GCM tag).
pub const TAG_LEN: usize = 16;

/// The nonce of record number `counter`: four zero bytes, then the counter as a
/// big-endian `u64`.
fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0; NONCE_LEN];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn key(bytes: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is always valid for AES-256-GCM.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).unwrap_or_else(|_| unreachable!()))
}

/// Seals the messages of one direction of one session, numbering them from 0. Each
/// counter value is used once: after 2^64 - 1 records it refuses to seal.
///
/// ```
/// # use std::sync::Arc;
/// # use distio_proto::remote::SessionCodec;
/// # use distio_proto::remote::passphrase::*;
/// # let codec = SessionCodec::new();
/// # let key = Arc::new(PassphraseKey::derive("s3cret", &[3; 16], 600_000)?);
/// # let mut server = ServerHandshake::new(codec, Arc::clone(&key));
/// # let (mut client, hello) = ClientHandshake::start(codec)?;
/// # let ServerStep::Reply(challenge) = server.receive(&hello)? else { panic!() };
/// # client.challenge(&challenge)?;
/// # let proof = client.prove(&key)?;
/// # let ServerStep::Done { reply, keys: mut server_keys } = server.receive(&proof)? else { panic!() };
/// # let mut client_keys = client.confirm(&reply)?;
/// // After a handshake (see ClientHandshake), each side has its RecordKeys.
/// let record = client_keys.sealer.seal(bytes::Bytes::from_static(b"hello"))?;
/// assert_eq!(record.len(), 5 + TAG_LEN);
/// assert_eq!(&server_keys.opener.open(record.clone())?[..], b"hello");
/// // The same record a second time does not open.
/// assert!(server_keys.opener.open(record).is_err());
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
pub struct Sealer {
    key: LessSafeKey,
    next: u64,
}

impl Sealer {
    pub(crate) fn new(key_bytes: &[u8; 32]) -> Self {
        Sealer {
            key: key(key_bytes),
            next: 0,
        }
    }

    /// Seals `buf` in place: encrypts it and appends the [`TAG_LEN`]-byte tag (no copy
    /// when `buf` has that much spare capacity).
    pub fn seal_in_place(&mut self, buf: &mut BytesMut) -> Result<(), ProtoError> {
        let counter = self.next;
        self.next = counter.checked_add(1).ok_or(ProtoError::RecordsExhausted)?;
        self.key
            .seal_in_place_append_tag(nonce(counter), Aad::empty(), buf)
            .map_err(|_| ProtoError::RecordsExhausted)
    }

    /// Seals `message`: in place when nobody else holds its buffer (keep
    /// [`TAG_LEN`] spare bytes of capacity there to avoid a reallocation), else on a copy.
    pub fn seal(&mut self, message: Bytes) -> Result<Bytes, ProtoError> {
        let mut buf = unique(message, TAG_LEN);
        self.seal_in_place(&mut buf)?;
        Ok(buf.freeze())
    }

    /// How many records were sealed.
    pub fn sealed(&self) -> u64 {
        self.next
    }
}

/// Opens the records of one direction of one session, in order. A record that does not
/// open (altered, replayed, reordered, or one before it dropped) is refused, and so is
/// everything after it: the session must end.
pub struct Opener {
    key: LessSafeKey,
    next: u64,
    broken: bool,
}

impl Opener {
    pub(crate) fn new(key_bytes: &[u8; 32]) -> Self {
        Opener {
            key: key(key_bytes),
            next: 0,
            broken: false,
        }
    }

    /// Opens the next record: the message it carries, in the record's own buffer when
    /// nobody else holds it.
    pub fn open(&mut self, record: Bytes) -> Result<Bytes, ProtoError> {
        let counter = self.next;
        let refused = ProtoError::RecordRefused { record: counter };
        if self.broken || record.len() < TAG_LEN {
            self.broken = true;
            return Err(refused);
        }
        let mut buf = unique(record, 0);
        let opened = self
            .key
            .open_in_place(nonce(counter), Aad::empty(), &mut buf)
            .map(|plain| plain.len());
        let (Ok(len), Some(next)) = (opened, counter.checked_add(1)) else {
            self.broken = true;
            return Err(refused);
        };
        self.next = next;
        buf.truncate(len);
        Ok(buf.freeze())
    }

    /// How many records were opened.
    pub fn opened(&self) -> u64 {
        self.next
    }
}

/// The buffer of `message` to change in place, with `spare` bytes of room: its own when
/// nobody else holds it, else a copy.
fn unique(message: Bytes, spare: usize) -> BytesMut {
    match message.try_into_mut() {
        Ok(mut buf) => {
            buf.reserve(spare);
            buf
        }
        Err(shared) => {
            let mut buf = BytesMut::with_capacity(shared.len() + spare);
            buf.extend_from_slice(&shared);
            buf
        }
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("sealed", &self.next)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("opened", &self.next)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// One side's record keys once the handshake is done: the sealer of what it sends, the
/// opener of what it receives.
#[derive(Debug)]
pub struct RecordKeys {
    /// Seals what this side sends.
    pub sealer: Sealer,
    /// Opens what this side receives.
    pub opener: Opener,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sealer, Opener) {
        (Sealer::new(&[5; 32]), Opener::new(&[5; 32]))
    }

    #[test]
    fn records_open_in_order_and_carry_the_message() {
        let (mut sealer, mut opener) = pair();
        for i in 0..5u8 {
            let message = Bytes::from(vec![i; 100]);
            let record = sealer.seal(message.clone()).unwrap();
            assert_eq!(record.len(), 100 + TAG_LEN);
            assert_ne!(&record[..100], &message[..]);
            assert_eq!(opener.open(record).unwrap(), message);
        }
        assert_eq!((sealer.sealed(), opener.opened()), (5, 5));
    }

    #[test]
    fn a_replayed_record_is_refused_and_so_is_everything_after() {
        let (mut sealer, mut opener) = pair();
        let first = sealer.seal(Bytes::from_static(b"spawn")).unwrap();
        opener.open(first.clone()).unwrap();
        assert!(matches!(
            opener.open(first),
            Err(ProtoError::RecordRefused { record: 1 })
        ));
        let next = sealer.seal(Bytes::from_static(b"next")).unwrap();
        assert!(opener.open(next).is_err(), "the opener stays broken");
    }

    #[test]
    fn reordered_dropped_altered_and_truncated_records_are_refused() {
        // Reordered.
        let (mut sealer, mut opener) = pair();
        let a = sealer.seal(Bytes::from_static(b"a")).unwrap();
        let b = sealer.seal(Bytes::from_static(b"b")).unwrap();
        assert!(opener.open(b).is_err());
        assert!(opener.open(a).is_err());
        // Dropped.
        let (mut sealer, mut opener) = pair();
        let _lost = sealer.seal(Bytes::from_static(b"a")).unwrap();
        let b = sealer.seal(Bytes::from_static(b"b")).unwrap();
        assert!(opener.open(b).is_err());
        // Every single bit flipped, and every truncation.
        let (mut sealer, _) = pair();
        let record = sealer.seal(Bytes::from_static(b"kill 9")).unwrap();
        for i in 0..record.len() * 8 {
            let mut altered = record.to_vec();
            altered[i / 8] ^= 1 << (i % 8);
            assert!(
                Opener::new(&[5; 32]).open(Bytes::from(altered)).is_err(),
                "bit {i}"
            );
        }
        for len in 0..record.len() {
            assert!(
                Opener::new(&[5; 32]).open(record.slice(..len)).is_err(),
                "{len}"
            );
        }
        // Under another key.
        assert!(Opener::new(&[6; 32]).open(record).is_err());
    }

    #[test]
    fn counters_never_reuse_a_nonce() {
        let (mut sealer, _) = pair();
        let a = sealer.seal(Bytes::from_static(b"same")).unwrap();
        let b = sealer.seal(Bytes::from_static(b"same")).unwrap();
        assert_ne!(a, b, "the same message sealed twice differs");
        // The last counter value is refused rather than wrapped.
        sealer.next = u64::MAX;
        let mut buf = BytesMut::from(&b"x"[..]);
        assert!(matches!(
            sealer.seal_in_place(&mut buf),
            Err(ProtoError::RecordsExhausted)
        ));
        assert_eq!(sealer.next, u64::MAX);
    }

    #[test]
    fn sealing_a_unique_buffer_with_room_does_not_copy() {
        let (mut sealer, mut opener) = pair();
        let mut buf = BytesMut::with_capacity(64 + TAG_LEN);
        buf.extend_from_slice(&[1; 64]);
        let ptr = buf.as_ptr();
        let record = sealer.seal(buf.freeze()).unwrap();
        assert_eq!(record.as_ptr(), ptr);
        let opened = opener.open(record).unwrap();
        assert_eq!(opened.as_ptr(), ptr);
    }
}
