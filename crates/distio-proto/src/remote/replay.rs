//! Counting, acknowledging and replaying frames, so a session resumed over a new
//! connection loses, repeats and reorders nothing.
//!
//! After the handshake every frame a side sends is counted, apart from the handshake's
//! own, [`Ack`](super::Ack) and [`Closing`](super::Closing) (see
//! [`SessionFrame::is_counted_tag`](super::SessionFrame::is_counted_tag)); its sequence
//! number is its index among them. The sender keeps each counted frame in a
//! [`ReplayBuffer`] until the peer acknowledges it; the receiver counts what it has taken
//! in with a [`ReceiveCounter`], which says when to acknowledge. On a resume each side
//! tells the other how many it received, and the other sends the rest again.

use std::collections::VecDeque;

use bytes::Bytes;

/// Acknowledge at least every this many counted frames.
pub const ACK_EVERY_FRAMES: u64 = 32;

/// Acknowledge at least every this many bytes of counted frames.
pub const ACK_EVERY_BYTES: usize = 256 * 1024;

/// The sent frames the peer has not acknowledged yet, at most `limit` bytes of them (a
/// single frame larger than the limit is kept when it is the only one).
///
/// ```
/// use bytes::Bytes;
/// use distio_proto::remote::ReplayBuffer;
///
/// let mut sent = ReplayBuffer::new(1024);
/// sent.push(Bytes::from_static(b"one"))?;
/// sent.push(Bytes::from_static(b"two"))?;
/// sent.ack(1)?;                       // the peer has the first
/// let again: Vec<_> = sent.replay_from(1)?.cloned().collect();
/// assert_eq!(again, [Bytes::from_static(b"two")]);
/// assert!(sent.ack(3).is_err());      // it cannot have more than was sent
/// # Ok::<(), distio_proto::remote::ReplayError>(())
/// ```
#[derive(Debug)]
pub struct ReplayBuffer {
    frames: VecDeque<Bytes>,
    /// The sequence number of `frames[0]` (= how many the peer acknowledged).
    acked: u64,
    bytes: usize,
    limit: usize,
}

/// Why a [`ReplayBuffer`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Keeping one more frame would pass the limit: the peer acknowledges too slowly.
    #[error(
        "{unacked} bytes sent are not acknowledged yet, and {len} more would pass the replay \
         limit of {limit} bytes"
    )]
    Overflow {
        /// Bytes kept.
        unacked: usize,
        /// The frame's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The peer acknowledged (or says it received) frames never sent.
    #[error("the peer acknowledged {acked} frames, but only {sent} were sent")]
    BeyondSent {
        /// What the peer said.
        acked: u64,
        /// How many were sent.
        sent: u64,
    },
    /// The peer says it received fewer frames than it acknowledged before: they are gone.
    #[error("the peer says it received {received} frames, but had acknowledged {acked}")]
    BehindAck {
        /// What the peer said.
        received: u64,
        /// What it had acknowledged.
        acked: u64,
    },
}

impl ReplayBuffer {
    /// An empty buffer holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ReplayBuffer {
            frames: VecDeque::new(),
            acked: 0,
            bytes: 0,
            limit,
        }
    }

    /// How many counted frames were sent.
    pub fn sent(&self) -> u64 {
        self.acked + self.frames.len() as u64
    }

    /// How many the peer acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Bytes kept for the peer.
    pub fn unacked_bytes(&self) -> usize {
        self.bytes
    }

    /// True if a frame of `len` bytes would be kept now.
    pub fn has_room_for(&self, len: usize) -> bool {
        self.frames.is_empty() || self.bytes.saturating_add(len) <= self.limit
    }

    /// True while the buffer holds less than its limit: a sender that checks this before
    /// taking its next frame, then keeps it with [`push_unchecked`](Self::push_unchecked),
    /// holds at most the limit and one frame.
    pub fn has_room(&self) -> bool {
        self.bytes < self.limit
    }

    /// Keeps a frame being sent; its sequence number comes back.
    pub fn push(&mut self, frame: Bytes) -> Result<u64, ReplayError> {
        if !self.has_room_for(frame.len()) {
            return Err(ReplayError::Overflow {
                unacked: self.bytes,
                len: frame.len(),
                limit: self.limit,
            });
        }
        Ok(self.push_unchecked(frame))
    }

    /// Keeps a frame being sent whatever its length (the caller checked
    /// [`has_room`](Self::has_room) before taking it); its sequence number comes back.
    pub fn push_unchecked(&mut self, frame: Bytes) -> u64 {
        let seq = self.sent();
        self.bytes += frame.len();
        self.frames.push_back(frame);
        seq
    }

    /// The peer has received the first `received` frames: they are dropped. An ack
    /// below an earlier one changes nothing (acks are cumulative).
    pub fn ack(&mut self, received: u64) -> Result<(), ReplayError> {
        if received > self.sent() {
            return Err(ReplayError::BeyondSent {
                acked: received,
                sent: self.sent(),
            });
        }
        while self.acked < received {
            if let Some(frame) = self.frames.pop_front() {
                self.bytes -= frame.len();
            }
            self.acked += 1;
        }
        Ok(())
    }

    /// On a resume, the peer has received `received` frames: acknowledges them and gives
    /// the rest, in order, to send again (they stay kept until acknowledged).
    pub fn replay_from(
        &mut self,
        received: u64,
    ) -> Result<impl ExactSizeIterator<Item = &Bytes>, ReplayError> {
        if received < self.acked {
            return Err(ReplayError::BehindAck {
                received,
                acked: self.acked,
            });
        }
        self.ack(received)?;
        Ok(self.frames.iter())
    }
}

/// The counted frames a side has received, and when to acknowledge them.
///
/// ```
/// use distio_proto::remote::{ReceiveCounter, ACK_EVERY_FRAMES};
///
/// let mut got = ReceiveCounter::default();
/// for _ in 1..ACK_EVERY_FRAMES {
///     assert_eq!(got.count(10), None);
/// }
/// assert_eq!(got.count(10), Some(ACK_EVERY_FRAMES)); // due: send Ack { received: 32 }
/// assert_eq!(got.tick(), None);                       // nothing new since
/// got.count(10);
/// assert_eq!(got.tick(), Some(ACK_EVERY_FRAMES + 1)); // the heartbeat's tick acks the rest
/// ```
#[derive(Clone, Debug, Default)]
pub struct ReceiveCounter {
    received: u64,
    acked: u64,
    bytes_since: usize,
}

impl ReceiveCounter {
    /// How many counted frames were received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// One more counted frame of `len` bytes was received (and acted on); the count to
    /// acknowledge if an ack is due now.
    pub fn count(&mut self, len: usize) -> Option<u64> {
        self.received += 1;
        self.bytes_since = self.bytes_since.saturating_add(len);
        let due =
            self.received - self.acked >= ACK_EVERY_FRAMES || self.bytes_since >= ACK_EVERY_BYTES;
        due.then(|| self.acked_now())
    }

    /// A periodic tick (the heartbeat's): the count to acknowledge if any frame came
    /// since the last ack.
    pub fn tick(&mut self) -> Option<u64> {
        (self.received != self.acked).then(|| self.acked_now())
    }

    /// The count was just told to the peer another way (a resume): no ack is due for it.
    pub fn told(&mut self) {
        self.acked_now();
    }

    fn acked_now(&mut self) -> u64 {
        self.acked = self.received;
        self.bytes_since = 0;
        self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    #[test]
    fn replay_gives_exactly_what_was_not_received_in_order() {
        let mut sent = ReplayBuffer::new(1 << 20);
        for n in 0..10 {
            assert_eq!(sent.push(frame(n, 10)).unwrap(), u64::from(n));
        }
        sent.ack(3).unwrap();
        let again: Vec<u8> = sent.replay_from(6).unwrap().map(|f| f[0]).collect();
        assert_eq!(again, [6, 7, 8, 9]);
        // Still kept until acknowledged: a second drop replays them again.
        let again: Vec<u8> = sent.replay_from(8).unwrap().map(|f| f[0]).collect();
        assert_eq!(again, [8, 9]);
        assert_eq!(sent.unacked_bytes(), 20);
        assert_eq!(sent.sent(), 10);
    }

    #[test]
    fn acks_are_cumulative_and_never_beyond_what_was_sent() {
        let mut sent = ReplayBuffer::new(100);
        sent.push(frame(1, 10)).unwrap();
        sent.push(frame(2, 10)).unwrap();
        sent.ack(2).unwrap();
        sent.ack(1).unwrap(); // older, harmless
        assert_eq!(sent.acked(), 2);
        assert_eq!(sent.unacked_bytes(), 0);
        assert_eq!(
            sent.ack(3),
            Err(ReplayError::BeyondSent { acked: 3, sent: 2 })
        );
        assert!(matches!(
            sent.replay_from(1),
            Err(ReplayError::BehindAck { .. })
        ));
    }

    #[test]
    fn the_buffer_refuses_to_grow_past_its_limit() {
        let mut sent = ReplayBuffer::new(25);
        sent.push(frame(1, 10)).unwrap();
        sent.push(frame(2, 10)).unwrap();
        assert!(!sent.has_room_for(10));
        assert!(sent.has_room());
        assert!(matches!(
            sent.push(frame(3, 10)),
            Err(ReplayError::Overflow { unacked: 20, .. })
        ));
        assert_eq!(sent.sent(), 2);
        sent.ack(1).unwrap();
        sent.push(frame(3, 10)).unwrap();
        // A frame larger than the limit goes alone.
        let mut big = ReplayBuffer::new(5);
        big.push(frame(1, 50)).unwrap();
        assert!(big.push(frame(2, 1)).is_err());
    }

    #[test]
    fn acks_are_due_by_count_by_bytes_and_on_the_tick() {
        let mut got = ReceiveCounter::default();
        assert_eq!(got.tick(), None);
        assert_eq!(got.count(ACK_EVERY_BYTES), Some(1));
        assert_eq!(got.count(1), None);
        got.told();
        assert_eq!(got.tick(), None);
        assert_eq!(got.received(), 2);
    }
}
