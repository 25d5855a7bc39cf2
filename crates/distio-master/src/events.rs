//! Named events slaves emit, and subscriptions to them.

use distio_proto::{Payload, SlaveId, Throttle};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Receiver, Sender, channel};

use crate::MasterError;

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

    /// Delivers `event` if it matches; false once the subscription is dropped.
    pub(crate) fn offer(&self, event: &SlaveEvent) -> bool {
        if self
            .filter
            .as_deref()
            .is_some_and(|name| name != event.name)
        {
            return !self.tx.is_closed();
        }
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                static FULL: Throttle = Throttle::new(Duration::from_secs(10));
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = FULL.allow() {
                    tracing::warn!(
                        slave = event.slave,
                        event = event.name,
                        suppressed,
                        "dropping an event: a subscription is full (its owner is not receiving)"
                    );
                }
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}
