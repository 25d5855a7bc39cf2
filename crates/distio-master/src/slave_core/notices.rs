//! What the slave says outside requests: events to subscribers, answers to pings.

use distio_proto::Event;
use tokio::sync::oneshot;

use super::SlaveCore;
use crate::events::{SlaveEvent, Subscriber};
use crate::sync::lock;

impl SlaveCore {
    pub(crate) fn publish(&self, event: Event) {
        let event = SlaveEvent {
            slave: self.id,
            name: event.name,
            payload: event.payload,
        };
        crate::events::publish(&self.subscribers, &event);
    }

    pub(crate) fn subscribe(&self, sub: Subscriber) {
        let mut subscribers = lock(&self.subscribers);
        // Subscriptions dropped since the last event go now, so the list stays bounded.
        subscribers.retain(|sub| !sub.is_closed());
        subscribers.push(sub);
    }

    pub(crate) fn ping_waiter(&self, nonce: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pings).insert(nonce, tx);
        rx
    }

    /// A ping that timed out: its answer is no longer awaited.
    pub(crate) fn forget_ping(&self, nonce: u64) {
        lock(&self.pings).remove(&nonce);
    }

    pub(crate) fn pong(&self, nonce: u64) {
        if let Some(tx) = lock(&self.pings).remove(&nonce) {
            let _ = tx.send(());
        }
    }
}
