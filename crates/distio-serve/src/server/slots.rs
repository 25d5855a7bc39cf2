//! The server's places for running slaves: at most `capacity` at once across all
//! sessions; spawns beyond wait in a bounded FIFO queue, each for at most a timeout.
//!
//! A waiting spawn is a oneshot receiver owned by the spawn's task: when its session ends
//! (or the master cancels it) the task is aborted and the receiver dropped, so its entry
//! is skipped when a place frees up and purged before the limit is checked: it never
//! starts and holds no place.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;

/// Why no place was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotError {
    /// The queue already holds `queue_limit` spawns.
    QueueFull,
    /// The spawn waited longer than the timeout.
    Timeout,
}

#[derive(Debug)]
pub(crate) struct Slots {
    capacity: usize,
    queue_limit: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    running: usize,
    queue: VecDeque<oneshot::Sender<Permit>>,
}

/// A place for one slave; dropping it frees the place for the next waiting spawn.
#[derive(Debug)]
pub(crate) struct Permit {
    slots: Arc<Slots>,
    armed: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.slots.release();
        }
    }
}

impl Slots {
    pub(crate) fn new(capacity: usize, queue_limit: usize) -> Arc<Self> {
        Arc::new(Slots {
            capacity: capacity.max(1),
            queue_limit,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Places taken now.
    pub(crate) fn running(&self) -> usize {
        self.lock().running
    }

    /// Spawns waiting now.
    pub(crate) fn queued(&self) -> usize {
        self.lock()
            .queue
            .iter()
            .filter(|tx| !tx.is_closed())
            .count()
    }

    /// A place, now or after the spawns queued before this one, within `timeout`.
    pub(crate) async fn acquire(self: &Arc<Self>, timeout: Duration) -> Result<Permit, SlotError> {
        let waiting = {
            let mut inner = self.lock();
            inner.queue.retain(|tx| !tx.is_closed());
            if inner.running < self.capacity && inner.queue.is_empty() {
                inner.running += 1;
                return Ok(Permit {
                    slots: Arc::clone(self),
                    armed: true,
                });
            }
            if inner.queue.len() >= self.queue_limit {
                return Err(SlotError::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            inner.queue.push_back(tx);
            rx
        };
        match tokio::time::timeout(timeout, waiting).await {
            Ok(Ok(permit)) => Ok(permit),
            // The sender is only dropped unsent when the queue is purged of closed
            // entries, which this one is not; treat it as a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(SlotError::Timeout),
        }
    }

    /// Hands the freed place to the first spawn still waiting, or frees it.
    fn release(self: &Arc<Self>) {
        let mut inner = self.lock();
        while let Some(waiter) = inner.queue.pop_front() {
            let permit = Permit {
                slots: Arc::clone(self),
                armed: true,
            };
            match waiter.send(permit) {
                Ok(()) => return,
                // Its spawn is gone: the place goes to the next one.
                Err(mut permit) => permit.armed = false,
            }
        }
        inner.running = inner.running.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn places_go_in_order_and_dropped_waiters_are_skipped() {
        let slots = Slots::new(1, 10);
        let first = slots.acquire(LONG).await.unwrap();
        let s = Arc::clone(&slots);
        let gone = tokio::spawn(async move { s.acquire(LONG).await.map(drop) });
        let s = Arc::clone(&slots);
        let second = tokio::spawn(async move { s.acquire(LONG).await });
        while slots.queued() < 2 {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        assert_eq!(slots.queued(), 1);
        drop(first);
        let second = second.await.unwrap().unwrap();
        assert_eq!(slots.running(), 1);
        drop(second);
        assert_eq!(slots.running(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_wait_times_out() {
        let slots = Slots::new(1, 1);
        let _held = slots.acquire(LONG).await.unwrap();
        let s = Arc::clone(&slots);
        let waiting =
            tokio::spawn(async move { s.acquire(Duration::from_millis(200)).await.map(drop) });
        while slots.queued() < 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.acquire(LONG).await.unwrap_err(), SlotError::QueueFull);
        assert_eq!(waiting.await.unwrap().unwrap_err(), SlotError::Timeout);
        assert_eq!(slots.running(), 1);
    }
}
