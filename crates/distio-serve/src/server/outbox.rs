//! A session's outgoing queue to its WebSocket, bounded in bytes.
//!
//! Slave frames wait for room ([`Outbox::send`]): the slave's socket is not read
//! meanwhile, which is the backpressure. Output lines are dropped when there is no room
//! ([`Outbox::try_output`]), and they may take only a small share of it
//! ([`OUTPUT_SHARE_MAX`]): the queue is first in, first out, so a slave's answer waits
//! behind whatever output is queued before it, and a slave flooding its output must not
//! make the other slaves of the session wait behind megabytes of it. Session frames (welcome, spawned, spawn-failed, exited,
//! closing) and pings never wait ([`Outbox::control`]): they are small and at most a few
//! per channel, and the session limits its channels, so they are bounded too.

use bytes::Bytes;
use distio_proto::remote::passphrase::Sealer;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// What the session's writer sends.
pub(crate) enum Out {
    /// A binary message, and the room it holds in the outbox.
    Message(Bytes, Option<Room>),
    /// A WebSocket ping.
    Ping,
    /// From now on, seal every message with this (the passphrase handshake is done).
    Seal(Box<Sealer>),
    /// Send what came before, then hand the connection's sending half and sealer over
    /// (the connection resumes another session) and stop.
    Detach(tokio::sync::oneshot::Sender<Detached>),
}

/// A connection's sending half and its sealer, handed over by its writer.
pub(crate) type Detached = (
    futures_util::stream::SplitSink<axum::extract::ws::WebSocket, axum::extract::ws::Message>,
    Option<Box<Sealer>>,
);

/// The room a queued message holds in the outbox, given back when dropped.
#[derive(Debug)]
pub(crate) struct Room {
    _bytes: OwnedSemaphorePermit,
    /// For an output line, its room in the output's share too.
    _output: Option<OwnedSemaphorePermit>,
}

/// Most bytes of output lines queued in one session's outbox (a quarter of the outbox
/// if that is less).
pub(crate) const OUTPUT_SHARE_MAX: usize = 64 * 1024;

/// The sending side of a session's outgoing queue. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    room: Arc<Semaphore>,
    /// The part of `room` output lines may hold.
    output_room: Arc<Semaphore>,
    limit: usize,
    output_limit: usize,
}

impl Outbox {
    /// An outbox holding at most `limit` bytes of slave frames and output (a message
    /// larger than the limit takes the whole of it).
    pub(crate) fn new(limit: usize) -> (Self, mpsc::UnboundedReceiver<Out>) {
        let limit = limit.clamp(1, u32::MAX as usize);
        let (tx, rx) = mpsc::unbounded_channel();
        let output_limit = (limit / 4).clamp(1, OUTPUT_SHARE_MAX);
        let outbox = Outbox {
            tx,
            room: Arc::new(Semaphore::new(limit)),
            output_room: Arc::new(Semaphore::new(output_limit)),
            limit,
            output_limit,
        };
        (outbox, rx)
    }

    fn weight(&self, message: &Bytes) -> u32 {
        // `limit` fits in a u32 (see `new`).
        message.len().clamp(1, self.limit) as u32
    }

    /// Queues a slave frame, waiting for room. False once the session's writer is gone.
    pub(crate) async fn send(&self, message: Bytes) -> bool {
        let weight = self.weight(&message);
        let Ok(permit) = Arc::clone(&self.room).acquire_many_owned(weight).await else {
            return false;
        };
        let room = Room {
            _bytes: permit,
            _output: None,
        };
        self.tx.send(Out::Message(message, Some(room))).is_ok()
    }

    /// Queues an output line if there is room for it now, in the outbox and in the share
    /// of it output may hold. False if there is not (or the writer is gone): the line is
    /// dropped.
    pub(crate) fn try_output(&self, message: Bytes) -> bool {
        let weight = self.weight(&message);
        // `output_limit` is at most `limit`, so this fits in a u32 too.
        let share = message.len().clamp(1, self.output_limit) as u32;
        let Ok(output) = Arc::clone(&self.output_room).try_acquire_many_owned(share) else {
            return false;
        };
        let Ok(bytes) = Arc::clone(&self.room).try_acquire_many_owned(weight) else {
            return false;
        };
        // Both are given back when the writer has handed the line to the socket.
        let room = Room {
            _bytes: bytes,
            _output: Some(output),
        };
        self.tx.send(Out::Message(message, Some(room))).is_ok()
    }

    /// Queues a session frame without waiting.
    pub(crate) fn control(&self, message: Bytes) {
        let _ = self.tx.send(Out::Message(message, None));
    }

    /// Queues a ping.
    pub(crate) fn ping(&self) {
        let _ = self.tx.send(Out::Ping);
    }

    /// Seals every message queued after this one with `sealer` (queue order is send
    /// order, so the records are numbered as they go out).
    pub(crate) fn seal_from_now(&self, sealer: Sealer) {
        let _ = self.tx.send(Out::Seal(Box::new(sealer)));
    }

    /// Asks the writer to hand its connection over once what is queued is sent.
    pub(crate) fn detach(&self) -> tokio::sync::oneshot::Receiver<Detached> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.tx.send(Out::Detach(tx));
        rx
    }

    /// Makes every waiting and later [`send`](Self::send) fail at once.
    pub(crate) fn close(&self) {
        self.room.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn output_takes_only_its_share_and_frames_keep_their_room() {
        let (outbox, mut rx) = Outbox::new(1 << 20);
        let line = Bytes::from(vec![b'x'; 1000]);
        let mut queued = 0;
        while outbox.try_output(line.clone()) {
            queued += 1;
        }
        assert_eq!(queued, OUTPUT_SHARE_MAX / 1000);
        // A slave frame still finds room at once.
        let frame = Bytes::from(vec![0u8; 512 * 1024]);
        let sent = tokio::time::timeout(Duration::from_secs(1), outbox.send(frame)).await;
        assert_eq!(sent, Ok(true));
        // Written lines give their share back.
        let Some(Out::Message(_, room)) = rx.recv().await else {
            panic!("a queued line")
        };
        drop(room);
        assert!(outbox.try_output(line));
    }

    #[test]
    fn a_small_outbox_gives_output_a_quarter() {
        let (outbox, _rx) = Outbox::new(4000);
        let line = Bytes::from(vec![b'x'; 500]);
        assert!(outbox.try_output(line.clone()));
        assert!(outbox.try_output(line.clone()));
        assert!(!outbox.try_output(line));
    }
}
