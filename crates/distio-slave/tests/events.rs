//! The bounded event queue: a master that stops reading makes `emit` fail with a clear
//! error instead of growing memory; `emit_wait` waits for room; queued events arrive in
//! order, also those emitted while closing.

mod common;

use common::{start, within};
use distio_proto::{Control, Frame};
use distio_slave::{SlaveError, SlaveProcess, TaskContext};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type R<T> = Result<T, distio_slave::TaskFailure>;

/// What the emitter saw when the queue was full: the index of the event `emit` refused,
/// and the error's details.
#[derive(Debug, PartialEq)]
struct Full {
    index: u64,
    name: String,
    capacity: usize,
}

type Report = oneshot::Sender<Result<Full, String>>;

/// Emits "tick" 0, 1, 2, … from a task of its own (as a background emitter would) until
/// `emit` says the queue is full; reports that out of band, then sends the refused event
/// again with `emit_wait`. Answers with the number of events sent and of events dropped.
fn flooding_slave(capacity: usize, report: Report) -> SlaveProcess {
    let report = Arc::new(Mutex::new(Some(report)));
    SlaveProcess::new()
        .event_queue(capacity)
        .task("flood", move |limit: u64, ctx: TaskContext| {
            let report = report.lock().unwrap().take();
            async move {
                let report =
                    report.ok_or_else(|| distio_slave::TaskFailure::new("flood runs once"))?;
                let slave = ctx.slave().clone();
                let emitter = tokio::spawn(async move {
                    for index in 0..limit {
                        match slave.emit("tick", &index) {
                            Ok(()) => tokio::task::yield_now().await,
                            Err(SlaveError::EventQueueFull { name, capacity }) => {
                                let _ = report.send(Ok(Full {
                                    index,
                                    name,
                                    capacity,
                                }));
                                slave.emit_wait("tick", &index).await?;
                                return R::Ok((index + 1, slave.dropped_events()));
                            }
                            Err(other) => {
                                let _ = report.send(Err(other.to_string()));
                                return Err(distio_slave::TaskFailure::new(other.to_string()));
                            }
                        }
                    }
                    let _ = report.send(Err(format!("{limit} events queued, never full")));
                    Err(distio_slave::TaskFailure::new("never full"))
                });
                emitter.await?
            }
        })
}

#[tokio::test]
async fn a_master_that_stops_reading_fills_the_queue_and_emit_says_so() {
    const CAPACITY: usize = 8;
    let (report, full) = oneshot::channel();
    let mut m = start(flooding_slave(CAPACITY, report));
    m.handshake().await;
    // Far more than the pipe and the queue hold together.
    m.request(1, "flood", &1_000_000u64).await;

    // The master reads nothing until the slave has reported the queue full.
    let full = within(full).await.unwrap().unwrap();
    assert_eq!(
        (full.name.as_str(), full.capacity),
        ("tick", CAPACITY),
        "{full:?}"
    );
    let message = SlaveError::EventQueueFull {
        name: full.name.clone(),
        capacity: full.capacity,
    }
    .to_string();
    assert!(message.contains("the master is not reading"), "{message}");

    // Reading again: every event the queue accepted arrives, in order, and the one `emit`
    // refused arrives last, sent again by `emit_wait`.
    let mut next = 0u64;
    let mut answer = None;
    while answer.is_none() || next <= full.index {
        match m.recv().await {
            Frame::Event(event) => {
                assert_eq!(event.name, "tick");
                assert_eq!(event.payload.decode::<u64>().unwrap(), next, "out of order");
                next += 1;
            }
            Frame::Response(response) => {
                assert_eq!(response.request, 1);
                answer = Some(response.outcome.unwrap().decode::<(u64, u64)>().unwrap());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(next, full.index + 1);
    assert_eq!(answer, Some((full.index + 1, 1)), "sent, dropped");

    // The slave goes on serving.
    m.send(Frame::Control(Control::Ping(9))).await;
    assert_eq!(m.recv().await, Frame::Control(Control::Pong(9)));
    m.send(Frame::Control(Control::Close)).await;
    within(m.serving).await.unwrap().unwrap();
}

#[tokio::test]
async fn events_the_close_hook_emits_beyond_the_queue_capacity_all_arrive() {
    const EVENTS: u32 = 100;
    let process = SlaveProcess::new()
        .event_queue(4)
        .on_close(|slave| async move {
            for i in 0..EVENTS {
                slave.emit_wait("bye", &i).await.unwrap();
            }
        });
    let mut m = start(process);
    m.handshake().await;
    m.send(Frame::Control(Control::Close)).await;
    for i in 0..EVENTS {
        match m.recv().await {
            Frame::Event(event) => assert_eq!(event.payload.decode::<u32>().unwrap(), i),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        within(m.rx.next()).await.is_none(),
        "then the slave is gone"
    );
    within(m.serving).await.unwrap().unwrap();
}
