//! The workpool's bookkeeping: who is busy, who is gone, who was sent how much, who waits,
//! and which transport takes the next task.

use std::collections::VecDeque;
use tokio::sync::oneshot;

use super::Balance;

/// The settings a slot is chosen by.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rule {
    pub(super) max_in_flight: usize,
    pub(super) balance: Balance,
}

/// How a task gets a slot.
pub(super) enum Taken {
    /// This transport's slot, at once.
    Now(usize),
    /// Queued: the slot comes through the channel, or `None` once no transport is left.
    Later(oneshot::Receiver<Option<usize>>),
    /// No transport is left.
    Exhausted,
}

/// Per transport: tasks running, gone or not, tasks sent; and the tasks waiting, in
/// arrival order (one entry per waiting caller, so the queue is as long as the callers
/// are many, no longer).
pub(super) struct Slots {
    busy: Vec<usize>,
    dead: Vec<bool>,
    sent: Vec<usize>,
    /// Where the round-robin search starts: after the last transport used.
    cursor: usize,
    waiters: VecDeque<oneshot::Sender<Option<usize>>>,
}

impl Slots {
    /// Bookkeeping for `n` idle, live transports.
    pub(super) fn new(n: usize) -> Self {
        Slots {
            busy: vec![0; n],
            dead: vec![false; n],
            sent: vec![0; n],
            cursor: 0,
            waiters: VecDeque::new(),
        }
    }

    /// Tasks sent so far, per transport.
    pub(super) fn sent(&self) -> &[usize] {
        &self.sent
    }

    /// Transports still taking work.
    pub(super) fn live(&self) -> usize {
        self.dead.iter().filter(|&&d| !d).count()
    }

    /// A slot now if one may be taken and nobody is waiting for one; else a place in the
    /// queue.
    pub(super) fn take_or_queue(&mut self, rule: Rule) -> Taken {
        if self.waiters.is_empty()
            && let Some(i) = self.take(rule)
        {
            return Taken::Now(i);
        }
        if self.live() == 0 {
            return Taken::Exhausted;
        }
        // Callers that gave up waiting leave their sender behind: sweep them out before
        // they outnumber the rest.
        if self.waiters.len() > 2 * self.busy.len() + 64 {
            self.waiters.retain(|waiter| !waiter.is_closed());
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push_back(tx);
        Taken::Later(rx)
    }

    /// A task is done with its slot on transport `i`, which `died` or not; waiting tasks
    /// get the slots that are free now.
    pub(super) fn release(&mut self, i: usize, died: bool, rule: Rule) {
        self.busy[i] -= 1;
        if died {
            self.dead[i] = true;
        }
        self.hand_out(rule);
    }

    /// A slot taken for a task that stopped waiting before it used it: as if never taken.
    pub(super) fn give_back(&mut self, i: usize, rule: Rule) {
        self.untake(i);
        self.hand_out(rule);
    }

    /// Takes a slot, if any transport may take a task now (see [`Balance`]): among the
    /// live transports with room (and, for [`Balance::EvenCounts`], sent fewer than the
    /// fewest sent to a live one plus `max_in_flight`), the least busy, then the one sent
    /// the fewest, then the next in round-robin order.
    fn take(&mut self, rule: Rule) -> Option<usize> {
        let limit = match rule.balance {
            Balance::EvenCounts => self.fewest_sent()? + rule.max_in_flight,
            Balance::FirstFree => usize::MAX,
        };
        let n = self.busy.len();
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if self.dead[i] || self.busy[i] >= rule.max_in_flight || self.sent[i] >= limit {
                continue;
            }
            if best.is_none_or(|b| (self.busy[i], self.sent[i]) < (self.busy[b], self.sent[b])) {
                best = Some(i);
            }
        }
        let i = best?;
        self.busy[i] += 1;
        self.sent[i] += 1;
        self.cursor = (i + 1) % n;
        Some(i)
    }

    /// The fewest tasks sent to a live transport; `None` if none is live.
    fn fewest_sent(&self) -> Option<usize> {
        self.sent
            .iter()
            .zip(&self.dead)
            .filter(|&(_, &dead)| !dead)
            .map(|(&sent, _)| sent)
            .min()
    }

    fn untake(&mut self, i: usize) {
        self.busy[i] -= 1;
        self.sent[i] -= 1;
    }

    /// Hands free slots to waiting tasks, in arrival order; tells them all when no
    /// transport is left.
    pub(super) fn hand_out(&mut self, rule: Rule) {
        while !self.waiters.is_empty() {
            let Some(i) = self.take(rule) else { break };
            let waiter = self.waiters.pop_front().expect("checked non-empty");
            if waiter.send(Some(i)).is_err() {
                self.untake(i); // that task stopped waiting
            }
        }
        if self.live() == 0 {
            for waiter in self.waiters.drain(..) {
                let _ = waiter.send(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVEN: Rule = Rule {
        max_in_flight: 1,
        balance: Balance::EvenCounts,
    };
    const FIRST_FREE: Rule = Rule {
        max_in_flight: 1,
        balance: Balance::FirstFree,
    };

    fn now(slots: &mut Slots, rule: Rule) -> Option<usize> {
        match slots.take_or_queue(rule) {
            Taken::Now(i) => Some(i),
            _ => None,
        }
    }

    #[test]
    fn even_counts_keeps_a_free_transport_that_is_ahead_waiting() {
        let mut slots = Slots::new(3);
        let firsts: Vec<_> = (0..3).map(|_| now(&mut slots, EVEN)).collect();
        assert_eq!(firsts, [Some(0), Some(1), Some(2)]);
        slots.release(1, false, EVEN);
        assert_eq!(now(&mut slots, EVEN), Some(1), "sent as many as the fewest");
        slots.release(1, false, EVEN);
        assert_eq!(slots.sent(), [1, 2, 1]);
        // 1 is idle but one ahead: the task waits for 0 or 2.
        let mut rx = queued(&mut slots, EVEN);
        slots.release(2, false, EVEN);
        assert_eq!(rx.try_recv(), Ok(Some(2)));
        assert_eq!(slots.sent(), [1, 2, 2]);
    }

    #[test]
    fn first_free_gives_the_task_to_whoever_is_free() {
        let mut slots = Slots::new(3);
        for _ in 0..3 {
            now(&mut slots, FIRST_FREE);
        }
        for _ in 0..5 {
            slots.release(1, false, FIRST_FREE);
            assert_eq!(now(&mut slots, FIRST_FREE), Some(1));
        }
        assert_eq!(slots.sent(), [1, 6, 1]);
    }

    fn queued(slots: &mut Slots, rule: Rule) -> oneshot::Receiver<Option<usize>> {
        match slots.take_or_queue(rule) {
            Taken::Later(rx) => rx,
            _ => panic!("the task should have to wait"),
        }
    }

    #[test]
    fn a_dead_transport_is_left_out_of_the_even_count() {
        let mut slots = Slots::new(3);
        for _ in 0..3 {
            now(&mut slots, EVEN);
        }
        slots.release(1, false, EVEN);
        slots.release(2, false, EVEN);
        assert_eq!(now(&mut slots, EVEN), Some(1));
        assert_eq!(now(&mut slots, EVEN), Some(2));
        slots.release(1, false, EVEN);
        slots.release(2, false, EVEN);
        assert_eq!(slots.sent(), [1, 2, 2]);
        // 1 and 2 are idle, but one ahead of 0, which hangs: the next task waits.
        let mut rx = queued(&mut slots, EVEN);
        // 0 dies under its first task: the others go on, evenly between them.
        slots.release(0, true, EVEN);
        assert_eq!(slots.live(), 2);
        let mut taken = vec![rx.try_recv().unwrap().unwrap()];
        for _ in 0..5 {
            slots.release(*taken.last().unwrap(), false, EVEN);
            taken.push(now(&mut slots, EVEN).expect("a live transport is free"));
        }
        assert_eq!(taken, [1, 2, 1, 2, 1, 2]);
        assert_eq!(slots.sent(), [1, 5, 5]);
    }

    #[test]
    fn max_in_flight_k_lets_counts_differ_by_k() {
        let rule = Rule {
            max_in_flight: 3,
            balance: Balance::EvenCounts,
        };
        let mut slots = Slots::new(2);
        for _ in 0..6 {
            assert!(now(&mut slots, rule).is_some());
        }
        // Transport 0 finishes everything, twice; 1 is stuck with 3 in flight.
        for _ in 0..3 {
            slots.release(0, false, rule);
        }
        for _ in 0..3 {
            assert_eq!(now(&mut slots, rule), Some(0));
        }
        for _ in 0..3 {
            slots.release(0, false, rule);
        }
        assert_eq!(slots.sent(), [6, 3]);
        let mut rx = queued(&mut slots, rule);
        slots.release(1, false, rule);
        assert_eq!(rx.try_recv(), Ok(Some(1)));
    }

    #[test]
    fn waiters_are_served_in_order_and_told_when_nothing_is_left() {
        let mut slots = Slots::new(1);
        assert_eq!(now(&mut slots, EVEN), Some(0));
        let mut waiting: Vec<_> = (0..3).map(|_| queued(&mut slots, EVEN)).collect();
        drop(waiting.remove(1)); // stops waiting: skipped
        slots.release(0, false, EVEN);
        assert_eq!(waiting[0].try_recv(), Ok(Some(0)));
        assert!(waiting[1].try_recv().is_err(), "still waiting");
        slots.release(0, true, EVEN);
        assert_eq!(waiting[1].try_recv(), Ok(None));
        assert!(matches!(slots.take_or_queue(EVEN), Taken::Exhausted));
        assert_eq!(slots.sent(), [2]);
    }
}
