//! Getting a slot for one task, and giving it back however the task ends.

use tokio::sync::oneshot;

use super::Workpool;
use super::slots::Taken;

/// A slot on one transport; given back when dropped.
pub(super) struct Slot<'a> {
    pool: &'a Workpool,
    pub(super) index: usize,
    /// Set when the task found the transport's slave gone.
    pub(super) died: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.pool
            .lock()
            .release(self.index, self.died, self.pool.rule());
    }
}

/// A task waiting for a slot. If it stops waiting after a slot was handed to it, the slot
/// goes back.
struct Waiting<'a> {
    pool: &'a Workpool,
    /// `None` once the answer was received.
    rx: Option<oneshot::Receiver<Option<usize>>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(Ok(Some(i))) = self.rx.as_mut().map(|rx| rx.try_recv()) {
            self.pool.lock().give_back(i, self.pool.rule());
        }
    }
}

impl Workpool {
    /// A slot for one task, once the pool's rule allows one; `None` when no transport is
    /// left.
    pub(super) async fn acquire(&self) -> Option<Slot<'_>> {
        let taken = self.lock().take_or_queue(self.rule());
        let index = match taken {
            Taken::Now(index) => index,
            Taken::Exhausted => return None,
            Taken::Later(rx) => {
                let mut waiting = Waiting {
                    pool: self,
                    rx: Some(rx),
                };
                let rx = waiting.rx.as_mut().expect("just set");
                let answer = loop {
                    match tokio::time::timeout(self.max_hold_back, &mut *rx).await {
                        Ok(answer) => break answer,
                        // Held back that long: whatever transport is free now takes the
                        // oldest waiting tasks, whatever the counts (never a stall).
                        Err(_) => self.lock().hand_out(self.relaxed_rule()),
                    }
                };
                // Received: nothing to give back on drop.
                waiting.rx = None;
                answer.ok().flatten()?
            }
        };
        Some(Slot {
            pool: self,
            index,
            died: false,
        })
    }
}
