//! A session's outgoing queue to its WebSocket, bounded in bytes.
//!
//! Slave frames wait for room ([`Outbox::send`]): the slave's socket is not read
//! meanwhile, which is the backpressure. Output lines are dropped when there is no room
//! ([`Outbox::try_send`]). Session frames (welcome, spawned, spawn-failed, exited,
//! closing) and pings never wait ([`Outbox::control`]): they are small and at most a few
//! per channel, and the session limits its channels, so they are bounded too.

use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// What the session's writer sends.
#[derive(Debug)]
pub(crate) enum Out {
    /// A binary message, and the room it holds in the outbox.
    Message(Bytes, Option<OwnedSemaphorePermit>),
    /// A WebSocket ping.
    Ping,
}

/// The sending side of a session's outgoing queue. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    room: Arc<Semaphore>,
    limit: usize,
}

impl Outbox {
    /// An outbox holding at most `limit` bytes of slave frames and output (a message
    /// larger than the limit takes the whole of it).
    pub(crate) fn new(limit: usize) -> (Self, mpsc::UnboundedReceiver<Out>) {
        let limit = limit.clamp(1, u32::MAX as usize);
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            room: Arc::new(Semaphore::new(limit)),
            limit,
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
        self.tx.send(Out::Message(message, Some(permit))).is_ok()
    }

    /// Queues a message if there is room now. False if there is not (or the writer is
    /// gone): the message is dropped.
    pub(crate) fn try_send(&self, message: Bytes) -> bool {
        let weight = self.weight(&message);
        let Ok(permit) = Arc::clone(&self.room).try_acquire_many_owned(weight) else {
            return false;
        };
        self.tx.send(Out::Message(message, Some(permit))).is_ok()
    }

    /// Queues a session frame without waiting.
    pub(crate) fn control(&self, message: Bytes) {
        let _ = self.tx.send(Out::Message(message, None));
    }

    /// Queues a ping.
    pub(crate) fn ping(&self) {
        let _ = self.tx.send(Out::Ping);
    }

    /// Makes every waiting and later [`send`](Self::send) fail at once.
    pub(crate) fn close(&self) {
        self.room.close();
    }
}
