//! The byte limit of a link's outbox: frames encoded for a slave but not yet written.
//!
//! A slave that stops reading its socket must not make its master buffer without bound.
//! Senders add the bytes they queue, writers release the bytes that leave; once the
//! outbox holds [`limit`](Room::limit) bytes, new requests wait (with their timeout
//! running, their frame not yet encoded) until the writer has drained it to half.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;

use crate::core::lock;

/// Bytes queued for one link, and the requests waiting for room.
#[derive(Debug)]
pub(crate) struct Room {
    limit: usize,
    used: AtomicUsize,
    waiters: Mutex<Vec<Waker>>,
}

impl Room {
    pub(crate) fn new(limit: usize) -> Self {
        Room {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Bytes queued now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// True when new requests must wait.
    pub(crate) fn is_full(&self) -> bool {
        self.used() >= self.limit
    }

    /// `n` more bytes were queued.
    pub(crate) fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` queued bytes were written (or dropped); wakes the waiting requests once the
    /// outbox is down to half its limit.
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.used.fetch_sub(n, Ordering::Relaxed);
        let after = before.saturating_sub(n);
        if after <= self.limit / 2 && before > self.limit / 2 {
            self.wake_all();
        }
    }

    /// Forgets every queued byte (the link ended) and wakes the waiting requests.
    pub(crate) fn clear(&self) {
        self.used.store(0, Ordering::Relaxed);
        self.wake_all();
    }

    /// Registers `waker` to be woken when there is room. Returns false (and registers
    /// nothing) if there is room already.
    pub(crate) fn wait(&self, waker: &Waker) -> bool {
        let mut waiters = lock(&self.waiters);
        // Checked under the lock `wake_all` takes, so a release in between is not missed.
        if !self.is_full() {
            return false;
        }
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
        true
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for waker in waiters {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn waiters_wake_when_drained_to_half() {
        let room = Room::new(100);
        assert!(!room.is_full());
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        assert!(!room.wait(&waker), "room left: nothing to wait for");
        room.add(120);
        assert!(room.is_full());
        assert!(room.wait(&waker));
        room.release(40); // 80 left: still more than half
        assert!(!flag.0.load(Ordering::SeqCst));
        room.release(40); // 40 left
        assert!(flag.0.load(Ordering::SeqCst));
        assert_eq!(room.used(), 40);
    }

    #[test]
    fn clear_wakes_everyone() {
        let room = Room::new(10);
        room.add(10);
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        assert!(room.wait(&Waker::from(Arc::clone(&flag))));
        room.clear();
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(!room.is_full());
    }
}
