//! Named events slaves emit, and subscriptions to them.

use distio_proto::{Payload, SlaveId, Throttle};
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Receiver, Sender, channel};

use crate::MasterError;
use crate::sync::lock;

/// Events a subscription holds that its owner has not received yet, at most. When it is
/// full, newer events for it are dropped and counted ([`Events::dropped`]); the slave and
/// other subscriptions are not held up.
///
/// ```
/// assert_eq!(distio_master::EVENT_QUEUE_LIMIT, 1024);
/// ```
pub const EVENT_QUEUE_LIMIT: usize = 1024;

/// An event a slave emitted.
///
/// ```
/// use distio_master::SlaveEvent;
/// use distio_proto::Payload;
/// let ev = SlaveEvent { slave: 1, name: "progress".into(), payload: Payload::encode(&0.25f64)? };
/// assert_eq!(ev.decode::<f64>()?, 0.25);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SlaveEvent {
    /// The slave that emitted it.
    pub slave: SlaveId,
    /// The event's name.
    pub name: String,
    /// The event's data.
    pub payload: Payload,
}

impl SlaveEvent {
    /// Decodes the event's data.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, MasterError> {
        self.payload.decode().map_err(MasterError::Decode)
    }
}

/// A subscription: receives events from the slaves it was made on, in the order each slave
/// emitted them. Ends (`recv` returns `None`) when all those slaves are gone.
///
/// Bounded: it holds at most [`EVENT_QUEUE_LIMIT`] events not yet received; when it is
/// full, newer events are dropped and counted in [`dropped`](Self::dropped). Dropping the
/// subscription unsubscribes.
///
/// Made by [`Slave::subscribe`](crate::Slave::subscribe) and
/// [`SlaveArray::subscribe`](crate::SlaveArray::subscribe).
#[derive(Debug)]
pub struct Events {
    rx: Receiver<SlaveEvent>,
    dropped: Arc<AtomicU64>,
}

impl Events {
    pub(crate) fn new(filter: Option<String>) -> (Events, Subscriber) {
        let (tx, rx) = channel(EVENT_QUEUE_LIMIT);
        let dropped = Arc::new(AtomicU64::new(0));
        let sub = Subscriber {
            filter,
            tx,
            dropped: Arc::clone(&dropped),
        };
        (Events { rx, dropped }, sub)
    }

    /// Events dropped because this subscription was full (its owner did not receive them
    /// fast enough).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The next event, or `None` once every slave subscribed to has ended.
    pub async fn recv(&mut self) -> Option<SlaveEvent> {
        self.rx.recv().await
    }

    /// The next event if one has arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<SlaveEvent> {
        self.rx.try_recv().ok()
    }
}

/// The slave side of a subscription.
#[derive(Clone, Debug)]
pub(crate) struct Subscriber {
    filter: Option<String>,
    tx: Sender<SlaveEvent>,
    dropped: Arc<AtomicU64>,
}

impl Subscriber {
    /// True once the subscription was dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Delivers `event` if it matches. Logs nothing: the caller holds the subscribers'
    /// lock, and reports a [`Offer::Full`] after releasing it.
    pub(crate) fn offer(&self, event: &SlaveEvent) -> Offer {
        if self
            .filter
            .as_deref()
            .is_some_and(|name| name != event.name)
        {
            return if self.tx.is_closed() {
                Offer::Closed
            } else {
                Offer::Passed
            };
        }
        match self.tx.try_send(event.clone()) {
            Ok(()) => Offer::Passed,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Offer::Full
            }
            Err(TrySendError::Closed(_)) => Offer::Closed,
        }
    }
}

/// What became of an event offered to a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Delivered, or not one the subscription wants.
    Passed,
    /// The subscription is full: the event was dropped and counted.
    Full,
    /// The subscription was dropped: take it off the list.
    Closed,
}

/// Offers `event` to every subscription in `subscribers`, forgetting dropped ones. The
/// warning about full subscriptions is logged after the lock is released: a log writer
/// that blocks (a stalled stdout) must not hold up other threads publishing or
/// subscribing.
pub(crate) fn publish(subscribers: &Mutex<Vec<Subscriber>>, event: &SlaveEvent) {
    let mut full = 0usize;
    lock(subscribers).retain(|sub| match sub.offer(event) {
        Offer::Passed => true,
        Offer::Full => {
            full += 1;
            true
        }
        Offer::Closed => false,
    });
    if full > 0 {
        static FULL: Throttle = Throttle::new(Duration::from_secs(10));
        if let Some(suppressed) = FULL.allow() {
            tracing::warn!(
                slave = event.slave,
                event = event.name,
                subscriptions = full,
                suppressed,
                "dropping an event: a subscription is full (its owner is not receiving)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Events, SlaveEvent, Subscriber, publish};
    use distio_proto::Payload;
    use std::sync::{Arc, Mutex};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata};

    /// On each warning, notes whether the subscribers' lock was free.
    struct LockProbe {
        subscribers: Arc<Mutex<Vec<Subscriber>>>,
        warned_unlocked: Arc<Mutex<Vec<bool>>>,
    }

    impl tracing::Subscriber for LockProbe {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() == tracing::Level::WARN
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {
            let free = self.subscribers.try_lock().is_ok();
            self.warned_unlocked.lock().unwrap().push(free);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn a_full_subscription_is_counted_and_logged_after_the_lock_is_released() {
        let (events, sub) = Events::new(None);
        let (closed, gone) = Events::new(None);
        drop(closed);
        let subscribers = Arc::new(Mutex::new(vec![sub, gone]));
        let warned_unlocked = Arc::new(Mutex::new(Vec::new()));
        let probe = LockProbe {
            subscribers: Arc::clone(&subscribers),
            warned_unlocked: Arc::clone(&warned_unlocked),
        };
        let event = SlaveEvent {
            slave: 1,
            name: "tick".into(),
            payload: Payload::encode(&()).unwrap(),
        };
        tracing::subscriber::with_default(probe, || {
            for _ in 0..super::EVENT_QUEUE_LIMIT + 5 {
                publish(&subscribers, &event);
            }
        });
        assert_eq!(events.dropped(), 5);
        assert_eq!(
            subscribers.lock().unwrap().len(),
            1,
            "the dropped one is gone"
        );
        let warned = warned_unlocked.lock().unwrap();
        assert_eq!(
            *warned,
            [true],
            "one warning (throttled), with the lock released"
        );
    }
}
