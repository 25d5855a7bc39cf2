//! Named events slaves emit, and subscriptions to them.

use distio_proto::{Payload, SlaveId};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::MasterError;

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
/// Made by [`Slave::subscribe`](crate::Slave::subscribe) and
/// [`SlaveArray::subscribe`](crate::SlaveArray::subscribe).
#[derive(Debug)]
pub struct Events {
    rx: UnboundedReceiver<SlaveEvent>,
}

impl Events {
    pub(crate) fn new(filter: Option<String>) -> (Events, Subscriber) {
        let (tx, rx) = unbounded_channel();
        (Events { rx }, Subscriber { filter, tx })
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
    tx: UnboundedSender<SlaveEvent>,
}

impl Subscriber {
    /// Delivers `event` if it matches; false once the subscription is dropped.
    pub(crate) fn offer(&self, event: &SlaveEvent) -> bool {
        if self
            .filter
            .as_deref()
            .is_some_and(|name| name != event.name)
        {
            return !self.tx.is_closed();
        }
        self.tx.send(event.clone()).is_ok()
    }
}
