//! The requests a slave has not answered yet, and the ones waiting for a place among them.
//!
//! A plain structure with no locking and no I/O: the slave's core keeps it behind a mutex.
//! Each request has a slot where its outcome meets its future. At most
//! [`limit`](PendingTable::new) slots exist at once; a request beyond that waits in a FIFO
//! queue and is given the first slot that frees (its future is woken and finds it placed).

use distio_proto::{Payload, RequestId, Response, TaskError};
use std::collections::{HashMap, VecDeque};
use std::task::{Poll, Waker};
use std::time::Instant;

/// Hashes request ids as themselves: they are sequential, so they spread well already and
/// SipHash would only cost time on every request.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for ids; fold anything else in case that changes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

pub(crate) type IdMap<V> = HashMap<RequestId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// An outcome and when it came.
pub(crate) type Outcome = (Result<Payload, TaskError>, Instant);

/// What a request's slot held when its future took it.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The slave's answer.
    Answered(Outcome),
    /// None: the link ended first, at this time (the slave's core says why).
    LinkEnded(Instant),
}

/// Where a request's outcome meets its future.
enum Slot {
    /// Not answered yet; the waker of the future's last poll.
    Waiting(Option<Waker>),
    /// Answered, or failed with the link; the future takes it on its next poll.
    Done(Answer),
}

/// What [`PendingTable::place`] did with a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Placed {
    /// It has a slot; this many requests are unanswered now, it included.
    Now(usize),
    /// Every slot is taken: it waits in the queue.
    Queued,
}

/// Requests waiting for a response, and whether the link can still answer them.
pub(crate) struct PendingTable {
    open: bool,
    limit: usize,
    /// Slots not yet answered (the rest hold an outcome their future has not collected).
    unanswered: usize,
    slots: IdMap<Slot>,
    /// Requests waiting for a slot, oldest first. Ids no longer in `queued` (gave up) are
    /// skipped when met, and swept out when they outnumber the rest.
    queue: VecDeque<RequestId>,
    /// The requests in `queue` still waiting, with the waker of their last poll.
    queued: IdMap<Waker>,
}

impl PendingTable {
    /// A table of at most `limit` slots (at least one).
    pub(crate) fn new(limit: usize) -> Self {
        PendingTable {
            open: true,
            limit: limit.max(1),
            unanswered: 0,
            slots: IdMap::default(),
            queue: VecDeque::new(),
            queued: IdMap::default(),
        }
    }

    /// Requests waiting for an answer: unanswered slots and queued requests.
    pub(crate) fn pending(&self) -> usize {
        self.unanswered + self.queued.len()
    }

    /// Gives request `id` a slot, or queues it when all are taken (or others already wait:
    /// the queue is first come, first served). `None` once the table is closed.
    pub(crate) fn place(&mut self, id: RequestId, waker: &Waker) -> Option<Placed> {
        if !self.open {
            return None;
        }
        if self.slots.len() < self.limit && self.queued.is_empty() {
            self.slots.insert(id, Slot::Waiting(Some(waker.clone())));
            self.unanswered += 1;
            return Some(Placed::Now(self.unanswered));
        }
        self.queue.push_back(id);
        self.queued.insert(id, waker.clone());
        Some(Placed::Queued)
    }

    /// For a queued request: `Some(true)` once it has been given a slot, `Some(false)` while
    /// it still waits (its waker updated), `None` if the table closed under it.
    pub(crate) fn poll_placed(&mut self, id: RequestId, waker: &Waker) -> Option<bool> {
        if self.slots.contains_key(&id) {
            return Some(true);
        }
        if !self.open {
            return None;
        }
        match self.queued.get_mut(&id) {
            Some(known) => {
                if !known.will_wake(waker) {
                    *known = waker.clone();
                }
                Some(false)
            }
            None => None,
        }
    }

    /// The outcome of request `id` once it is there; until then `waker` is kept to be woken
    /// when it arrives. Takes the outcome out. `Ready(None)`: the request has no slot (never
    /// placed, or already taken).
    pub(crate) fn poll_answer(
        &mut self,
        id: RequestId,
        waker: &Waker,
        wake: &mut Vec<Waker>,
    ) -> Poll<Option<Answer>> {
        match self.slots.get_mut(&id) {
            Some(Slot::Waiting(known)) => {
                match known {
                    Some(known) if known.will_wake(waker) => {}
                    _ => *known = Some(waker.clone()),
                }
                Poll::Pending
            }
            Some(Slot::Done(_)) => {
                let taken = match self.slots.remove(&id) {
                    Some(Slot::Done(outcome)) => Some(outcome),
                    _ => None,
                };
                self.grant(wake);
                Poll::Ready(taken)
            }
            None => Poll::Ready(None),
        }
    }

    /// True while request `id` holds a slot and has no answer: its frame is still worth
    /// sending.
    pub(crate) fn is_waiting(&self, id: RequestId) -> bool {
        matches!(self.slots.get(&id), Some(Slot::Waiting(_)))
    }

    /// Forgets request `id` (timed out, or abandoned by its caller), whether it holds a slot
    /// or waits for one. Wakers of requests given the freed slot go to `wake`.
    pub(crate) fn forget(&mut self, id: RequestId, wake: &mut Vec<Waker>) {
        match self.slots.remove(&id) {
            Some(slot) => {
                if let Slot::Waiting(_) = slot {
                    self.unanswered -= 1;
                }
                self.grant(wake);
            }
            None => {
                if self.queued.remove(&id).is_some()
                    && self.queue.len() > 2 * self.queued.len() + 64
                {
                    let queued = &self.queued;
                    self.queue.retain(|id| queued.contains_key(id));
                }
            }
        }
    }

    /// Puts `response` in its request's slot; its waker goes to `wake`. False if no request
    /// waits for it (late, repeated, or never asked).
    pub(crate) fn answer(
        &mut self,
        response: Response,
        at: Instant,
        wake: &mut Vec<Waker>,
    ) -> bool {
        match self.slots.get_mut(&response.request) {
            Some(slot @ Slot::Waiting(_)) => {
                if let Slot::Waiting(waker) =
                    std::mem::replace(slot, Slot::Done(Answer::Answered((response.outcome, at))))
                {
                    self.unanswered -= 1;
                    wake.extend(waker);
                }
                true
            }
            Some(Slot::Done(_)) | None => false,
        }
    }

    /// The link ended at `at`: every unanswered request is told so, queued requests are
    /// woken to find the table closed, and nothing new is placed.
    pub(crate) fn close(&mut self, at: Instant, wake: &mut Vec<Waker>) {
        self.open = false;
        self.unanswered = 0;
        for slot in self.slots.values_mut() {
            if let Slot::Waiting(waker) = slot {
                wake.extend(waker.take());
                *slot = Slot::Done(Answer::LinkEnded(at));
            }
        }
        self.queue.clear();
        wake.extend(self.queued.drain().map(|(_, waker)| waker));
    }

    /// Gives free slots to queued requests, oldest first.
    fn grant(&mut self, wake: &mut Vec<Waker>) {
        while self.slots.len() < self.limit {
            let Some(id) = self.queue.pop_front() else {
                return;
            };
            let Some(waker) = self.queued.remove(&id) else {
                continue; // gave up meanwhile
            };
            self.slots.insert(id, Slot::Waiting(Some(waker.clone())));
            self.unanswered += 1;
            wake.push(waker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn answer(request: RequestId) -> Response {
        Response {
            request,
            slave: 0,
            outcome: Ok(Payload::encode(&request).unwrap()),
        }
    }

    #[test]
    fn places_until_the_limit_then_queues_in_order() {
        let mut t = PendingTable::new(2);
        let w = Waker::noop();
        let mut wake = Vec::new();
        assert_eq!(t.place(1, w), Some(Placed::Now(1)));
        assert_eq!(t.place(2, w), Some(Placed::Now(2)));
        assert_eq!(t.place(3, w), Some(Placed::Queued));
        assert_eq!(t.place(4, w), Some(Placed::Queued));
        assert_eq!(t.pending(), 4);
        assert_eq!(t.poll_placed(3, w), Some(false));
        // An answer frees nothing until its future takes it.
        assert!(t.answer(answer(1), Instant::now(), &mut wake));
        assert_eq!(wake.len(), 1, "the answered request is woken");
        assert_eq!(t.poll_placed(3, w), Some(false));
        wake.clear();
        assert!(matches!(
            t.poll_answer(1, w, &mut wake),
            Poll::Ready(Some(Answer::Answered((Ok(_), _))))
        ));
        assert_eq!(wake.len(), 1, "the oldest queued request is woken");
        assert_eq!(t.poll_placed(3, w), Some(true));
        assert_eq!(t.poll_placed(4, w), Some(false));
        // Forgetting a placed request hands its slot on too.
        wake.clear();
        t.forget(2, &mut wake);
        assert_eq!(wake.len(), 1);
        assert_eq!(t.poll_placed(4, w), Some(true));
        assert_eq!(t.pending(), 2);
    }

    #[test]
    fn a_new_request_does_not_pass_queued_ones() {
        let mut t = PendingTable::new(1);
        let w = Waker::noop();
        let mut wake = Vec::new();
        t.place(1, w);
        assert_eq!(t.place(2, w), Some(Placed::Queued));
        t.forget(1, &mut wake); // slot goes to 2
        assert_eq!(t.place(3, w), Some(Placed::Queued));
        assert_eq!(t.poll_placed(2, w), Some(true));
        // A queued request that gives up leaves the queue.
        t.forget(3, &mut wake);
        assert_eq!(t.poll_placed(3, w), None);
        assert_eq!(t.pending(), 1);
    }

    #[test]
    fn requests_that_give_up_in_the_queue_do_not_pile_up() {
        let mut t = PendingTable::new(1);
        let w = Waker::noop();
        let mut wake = Vec::new();
        t.place(0, w);
        for id in 1..10_000 {
            assert_eq!(t.place(id, w), Some(Placed::Queued));
            t.forget(id, &mut wake);
        }
        assert!(t.queue.len() < 200, "swept: {}", t.queue.len());
        assert_eq!(t.place(10_000, w), Some(Placed::Queued));
        t.forget(0, &mut wake);
        assert_eq!(t.poll_placed(10_000, w), Some(true));
    }

    #[test]
    fn late_and_unknown_answers_are_refused() {
        let mut t = PendingTable::new(8);
        let mut wake = Vec::new();
        t.place(1, Waker::noop());
        t.forget(1, &mut wake);
        assert!(!t.answer(answer(1), Instant::now(), &mut wake));
        assert!(!t.answer(answer(99), Instant::now(), &mut wake));
        assert!(!t.is_waiting(1));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn closing_fails_the_placed_and_wakes_the_queued() {
        let mut t = PendingTable::new(1);
        let w = Waker::noop();
        let mut wake = Vec::new();
        t.place(1, w);
        t.place(2, w);
        t.close(Instant::now(), &mut wake);
        assert_eq!(wake.len(), 2);
        assert_eq!(t.poll_placed(2, w), None);
        assert!(matches!(
            t.poll_answer(1, w, &mut wake),
            Poll::Ready(Some(Answer::LinkEnded(_)))
        ));
        assert_eq!(t.place(3, w), None);
        assert_eq!(t.pending(), 0);
    }
}
