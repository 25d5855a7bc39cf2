//! Warnings a master can trigger once per frame are rate-limited: a flood of stray frames
//! makes a line or two, not one per frame.

mod common;

use common::start;
use distio_proto::{Control, Event, Frame, Payload};
use distio_slave::SlaveProcess;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Metadata, Subscriber};

/// Keeps the message of every warning.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    fn containing(&self, text: &str) -> Vec<String> {
        let all = self.0.lock().unwrap();
        all.iter().filter(|m| m.contains(text)).cloned().collect()
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Warnings {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() == Level::WARN
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push(message.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn a_flood_of_stray_frames_makes_a_few_warnings_not_one_each() {
    const STRAY: u64 = 2000;
    let warnings = Warnings::default();
    // The runtime is single-threaded: the slave's serving task logs on this thread.
    let _guard = tracing::subscriber::set_default(warnings.clone());

    let mut m = start(SlaveProcess::new());
    m.handshake().await;
    for n in 0..STRAY {
        let event = Event {
            name: "not from a master".into(),
            payload: Payload::encode(&n).unwrap(),
        };
        m.send(Frame::Event(event)).await;
    }
    // Answered only after every stray frame before it was read.
    m.send(Frame::Control(Control::Ping(1))).await;
    assert_eq!(m.recv().await, Frame::Control(Control::Pong(1)));

    let logged = warnings.containing("ignoring a frame a master should not send");
    // One line per interval: the first one, and at most a couple more on a slow machine.
    assert!(
        (1..=3).contains(&logged.len()),
        "{} warnings for {STRAY} stray frames",
        logged.len()
    );
}
