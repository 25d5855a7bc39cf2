//! The byte limit of a link's outbox: frames encoded for a slave but not yet written.
//!
//! A slave that stops reading its socket must not make its master buffer without bound.
//! Senders add the bytes they queue, writers release the bytes that leave. While fewer
//! than the limit are queued a request may add its frame, whatever its size; once the
//! outbox is full, requests wait (with their timeout running, their frame not yet
//! encoded) in a first-come, first-served queue, and the oldest is let in whenever the
//! outbox is below its limit again. A request that gives up leaves the queue at once.

use distio_proto::RequestId;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Waker;

use crate::pending::IdMap;
use crate::sync::lock;

/// Bytes queued for one link, and the requests waiting for room.
#[derive(Debug)]
pub(crate) struct Room {
    limit: usize,
    used: AtomicUsize,
    /// True while `waiters` has anyone: newcomers then queue behind them.
    crowded: AtomicBool,
    waiters: Mutex<Waiters>,
}

/// Requests waiting for room, oldest first. Ids no longer in `wakers` (gave up) are
/// skipped when met, and swept out when they outnumber the rest.
#[derive(Debug, Default)]
struct Waiters {
    order: VecDeque<RequestId>,
    wakers: IdMap<Waker>,
}

impl Waiters {
    /// The oldest request still waiting.
    fn front(&mut self) -> Option<RequestId> {
        while let Some(&id) = self.order.front() {
            if self.wakers.contains_key(&id) {
                return Some(id);
            }
            self.order.pop_front();
        }
        None
    }

    fn remove(&mut self, id: RequestId) -> bool {
        let removed = self.wakers.remove(&id).is_some();
        if removed && self.order.len() > 2 * self.wakers.len() + 64 {
            let wakers = &self.wakers;
            self.order.retain(|id| wakers.contains_key(id));
        }
        removed
    }
}

impl Room {
    pub(crate) fn new(limit: usize) -> Self {
        Room {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            crowded: AtomicBool::new(false),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// Bytes queued now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// True when the outbox holds its limit or more.
    pub(crate) fn is_full(&self) -> bool {
        self.used() >= self.limit
    }

    /// May request `id` queue its frame now? If not, it waits in line and `waker` is woken
    /// when its turn comes (call again then). Requests are let in oldest first.
    pub(crate) fn admit(&self, id: RequestId, waker: &Waker) -> bool {
        if !self.crowded.load(Ordering::SeqCst) && !self.is_full() {
            return true;
        }
        let mut waiters = lock(&self.waiters);
        let first = waiters.front().is_none_or(|front| front == id);
        if first && !self.is_full() {
            waiters.remove(id);
            self.settle(&mut waiters);
            return true;
        }
        match waiters.wakers.get_mut(&id) {
            Some(known) => {
                if !known.will_wake(waker) {
                    *known = waker.clone();
                }
            }
            None => {
                waiters.order.push_back(id);
                waiters.wakers.insert(id, waker.clone());
                self.crowded.store(true, Ordering::SeqCst);
            }
        }
        // Room may have come between the first check and taking our place: then whoever
        // is first must hear of it, as a release would have told them.
        self.settle(&mut waiters);
        false
    }

    /// Request `id` no longer waits (it was let in, timed out, or was dropped).
    pub(crate) fn forget(&self, id: RequestId) {
        if !self.crowded.load(Ordering::SeqCst) {
            return;
        }
        let mut waiters = lock(&self.waiters);
        if waiters.remove(id) {
            self.settle(&mut waiters);
        }
    }

    /// `n` more bytes were queued.
    pub(crate) fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::SeqCst);
    }

    /// `n` queued bytes were written (or dropped): the oldest waiting request is woken if
    /// there is room now.
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        // Saturating: a release that overtakes its add (another thread) cannot wrap.
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                Some(used.saturating_sub(n))
            });
        if self.crowded.load(Ordering::SeqCst) && !self.is_full() {
            self.settle(&mut lock(&self.waiters));
        }
    }

    /// Forgets every queued byte (the link ended) and wakes every waiting request.
    pub(crate) fn clear(&self) {
        self.used.store(0, Ordering::SeqCst);
        let mut waiters = lock(&self.waiters);
        waiters.order.clear();
        let woken: Vec<Waker> = waiters.wakers.drain().map(|(_, waker)| waker).collect();
        self.crowded.store(false, Ordering::SeqCst);
        drop(waiters);
        woken.into_iter().for_each(Waker::wake);
    }

    /// Keeps `crowded` true exactly while someone waits, and wakes the oldest waiter when
    /// there is room for it.
    fn settle(&self, waiters: &mut Waiters) {
        match waiters.front() {
            None => self.crowded.store(false, Ordering::SeqCst),
            Some(front) => {
                if !self.is_full()
                    && let Some(waker) = waiters.wakers.get(&front)
                {
                    waker.wake_by_ref();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        (count, waker)
    }

    fn woken(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn lets_requests_in_until_full_then_in_order() {
        let room = Room::new(100);
        let (a, wa) = counter();
        let (b, wb) = counter();
        assert!(room.admit(1, &wa));
        room.add(120);
        assert!(!room.admit(2, &wa));
        assert!(!room.admit(3, &wb));
        room.release(30); // 90 left: room for one more
        assert_eq!(woken(&a), 1, "the oldest is told");
        assert_eq!(woken(&b), 0);
        // A newcomer does not pass the ones waiting.
        assert!(!room.admit(4, Waker::noop()));
        assert!(!room.admit(3, &wb), "not its turn yet");
        assert!(room.admit(2, &wa));
        room.add(50);
        room.release(60); // 80 left
        assert!(woken(&b) >= 1);
        assert!(room.admit(3, &wb));
    }

    #[test]
    fn a_request_that_gives_up_leaves_the_line() {
        let room = Room::new(10);
        room.add(10);
        let (a, wa) = counter();
        let (b, wb) = counter();
        assert!(!room.admit(1, &wa));
        assert!(!room.admit(2, &wb));
        room.forget(1);
        room.release(5);
        assert_eq!(woken(&a), 0);
        assert!(woken(&b) >= 1);
        assert!(room.admit(2, &wb));
        assert!(room.admit(9, Waker::noop()), "nobody waits: straight in");
        for id in 100..10_000 {
            room.add(100);
            assert!(!room.admit(id, Waker::noop()));
            room.forget(id);
        }
        assert!(lock(&room.waiters).order.len() < 200);
    }

    #[test]
    fn releases_never_wrap_and_clear_wakes_everyone() {
        let room = Room::new(10);
        room.release(5);
        assert_eq!(room.used(), 0);
        room.add(10);
        let (a, wa) = counter();
        assert!(!room.admit(1, &wa));
        room.clear();
        assert_eq!(woken(&a), 1);
        assert!(room.admit(1, &wa));
    }
}
