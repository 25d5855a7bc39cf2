//! The cap on running handlers: once it is reached the slave stops reading its connection
//! until a handler finishes, and every request is still answered.

mod common;

use common::{start, within};
use distio_proto::{Control, Frame};
use distio_slave::SlaveProcess;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Handlers started, running now, and the most ever running at once.
#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    running: AtomicUsize,
    most: AtomicUsize,
}

/// A slave whose "gate" handler waits for a permit of `gate`, which the test hands out.
fn gated_slave(max_running: usize, gate: Arc<Semaphore>, counts: Arc<Counts>) -> SlaveProcess {
    SlaveProcess::new()
        .max_running(max_running)
        .task("gate", move |n: u64, _| {
            let (gate, counts) = (Arc::clone(&gate), Arc::clone(&counts));
            async move {
                counts.started.fetch_add(1, Ordering::SeqCst);
                let now = counts.running.fetch_add(1, Ordering::SeqCst) + 1;
                counts.most.fetch_max(now, Ordering::SeqCst);
                gate.acquire().await?.forget();
                counts.running.fetch_sub(1, Ordering::SeqCst);
                Ok(n)
            }
        })
}

#[tokio::test]
async fn requests_beyond_the_cap_wait_in_the_socket_until_a_handler_finishes() {
    const CAP: usize = 4;
    const REQUESTS: u64 = 20;
    let gate = Arc::new(Semaphore::new(0));
    let counts = Arc::new(Counts::default());
    let mut m = start(gated_slave(CAP, Arc::clone(&gate), Arc::clone(&counts)));
    m.handshake().await;
    for id in 1..=REQUESTS {
        m.request(id, "gate", &id).await;
    }
    m.send(Frame::Control(Control::Ping(7))).await;

    // The first CAP start, and then the slave reads no further: not the other requests,
    // not the ping behind them. (Waiting for a frame that must not come: this cannot fail
    // on a slow machine, only let a broken cap go unnoticed for a while.)
    within(async {
        while counts.started.load(Ordering::SeqCst) < CAP {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let early = tokio::time::timeout(Duration::from_millis(500), m.recv()).await;
    assert!(
        early.is_err(),
        "the slave answered {early:?} with its handlers all waiting"
    );
    assert_eq!(counts.started.load(Ordering::SeqCst), CAP);

    // Opening the gate lets them all through, never more than CAP at once.
    gate.add_permits(REQUESTS as usize);
    let mut answered = BTreeSet::new();
    let mut ponged = false;
    while answered.len() < REQUESTS as usize || !ponged {
        match m.recv().await {
            Frame::Response(response) => {
                let n: u64 = response.outcome.unwrap().decode().unwrap();
                assert_eq!(n, response.request);
                answered.insert(n);
            }
            Frame::Control(Control::Pong(7)) => ponged = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(answered, (1..=REQUESTS).collect());
    assert_eq!(counts.started.load(Ordering::SeqCst), REQUESTS as usize);
    assert_eq!(counts.most.load(Ordering::SeqCst), CAP);

    m.send(Frame::Control(Control::Close)).await;
    within(m.serving).await.unwrap().unwrap();
}
