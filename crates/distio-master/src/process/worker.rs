//! Long-lived helper threads that take jobs from a bounded channel.

use std::io;
use std::sync::Mutex;
use tokio::sync::mpsc;

use crate::sync::lock;

/// A thread started on first use that takes jobs from a bounded channel for as long as the
/// process lives. Its owner is the process: idle, it blocks in `recv`; it ends when the
/// process does. Async callers `send(..).await`, so a busy thread makes them wait without
/// ever blocking a runtime thread.
pub(crate) struct Worker<T> {
    name: &'static str,
    capacity: usize,
    run: fn(mpsc::Receiver<T>),
    sender: Mutex<Option<mpsc::Sender<T>>>,
}

impl<T: Send + 'static> Worker<T> {
    /// A worker named `name` (the thread's name) running `run` on a channel of `capacity`.
    pub(crate) const fn new(
        name: &'static str,
        capacity: usize,
        run: fn(mpsc::Receiver<T>),
    ) -> Self {
        Worker {
            name,
            capacity,
            run,
            sender: Mutex::new(None),
        }
    }

    /// The channel to the thread, which is started first if it is not running (never
    /// started yet, or ended by a panic).
    pub(crate) fn sender(&self) -> io::Result<mpsc::Sender<T>> {
        let mut sender = lock(&self.sender);
        if let Some(running) = sender.as_ref().filter(|tx| !tx.is_closed()) {
            return Ok(running.clone());
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        let run = self.run;
        // Detached: the thread lives as long as the process (see the type's docs).
        std::thread::Builder::new()
            .name(self.name.to_owned())
            .spawn(move || run(rx))?;
        *sender = Some(tx.clone());
        Ok(tx)
    }
}
