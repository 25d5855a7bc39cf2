//! The slave runtime against a hand-driven master speaking raw frames.

mod common;

use common::{FakeMaster, start, within};
use distio_proto::{Control, ErrorKind, Frame, Hello, SlaveIdentity};
use distio_slave::{SlaveError, SlaveProcess, TaskContext};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

type R<T> = Result<T, distio_slave::TaskFailure>;

fn slave(closed: Arc<AtomicBool>) -> SlaveProcess {
    SlaveProcess::new()
        .task("square", |n: u64, _| async move { R::Ok(n * n) })
        .task("sleep", |ms: u64, _| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            R::Ok(ms)
        })
        .task("pause", |_: (), ctx: TaskContext| async move {
            ctx.slave().pause();
            R::Ok(())
        })
        .on_close(move |_| async move { closed.store(true, Ordering::SeqCst) })
}

/// The handshake, checking the slave lists its tasks.
async fn handshake(m: &mut FakeMaster) {
    let ready = m.handshake().await;
    assert_eq!(ready.tasks, ["pause", "sleep", "square"]);
}

#[tokio::test]
async fn serves_requests_concurrently_after_the_handshake() {
    let mut m = start(slave(Arc::default()));
    handshake(&mut m).await;
    m.request(1, "sleep", &1500u64).await;
    m.request(2, "square", &9u64).await;
    let first = m.response().await;
    assert_eq!(
        (first.request, first.slave),
        (2, 5),
        "the fast request answers first"
    );
    assert_eq!(first.outcome.unwrap().decode::<u64>().unwrap(), 81);
    assert_eq!(m.response().await.request, 1);
    m.send(Frame::Control(Control::Ping(77))).await;
    assert_eq!(m.recv().await, Frame::Control(Control::Pong(77)));
}

#[tokio::test]
async fn unknown_tasks_and_pause_are_answered_with_errors() {
    let mut m = start(slave(Arc::default()));
    handshake(&mut m).await;
    m.request(1, "nope", &()).await;
    let err = m.response().await.outcome.unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownTask);
    assert_eq!(err.message, "Slave #5 does not listen to task \"nope\"");
    m.request(2, "pause", &()).await;
    assert!(m.response().await.outcome.is_ok());
    m.request(3, "square", &2u64).await;
    let err = m.response().await.outcome.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Paused);
    assert_eq!(err.message, "Slave #5 is paused and not accepting messages");
}

#[tokio::test]
async fn close_runs_the_hook_and_returns() {
    let closed = Arc::new(AtomicBool::new(false));
    let mut m = start(slave(Arc::clone(&closed)));
    handshake(&mut m).await;
    m.request(1, "sleep", &60_000u64).await;
    m.send(Frame::Control(Control::Close)).await;
    within(m.serving).await.unwrap().unwrap();
    assert!(closed.load(Ordering::SeqCst));
}

#[tokio::test]
async fn shutdown_drains_running_requests_and_refuses_new_ones() {
    let closed = Arc::new(AtomicBool::new(false));
    let mut m = start(slave(Arc::clone(&closed)));
    handshake(&mut m).await;
    m.request(1, "sleep", &1000u64).await;
    m.send(Frame::Control(Control::Shutdown)).await;
    m.request(2, "square", &2u64).await;
    let refused = m.response().await;
    assert_eq!(refused.request, 2);
    assert_eq!(refused.outcome.unwrap_err().kind, ErrorKind::Closed);
    let finished = m.response().await;
    assert_eq!(finished.outcome.unwrap().decode::<u64>().unwrap(), 1000);
    within(m.serving).await.unwrap().unwrap();
    assert!(closed.load(Ordering::SeqCst));
}

#[tokio::test]
async fn the_slave_returns_promptly_when_the_master_goes_away() {
    let closed = Arc::new(AtomicBool::new(false));
    let mut m = start(slave(Arc::clone(&closed)));
    handshake(&mut m).await;
    m.request(1, "sleep", &60_000u64).await;
    let FakeMaster { rx, tx, serving } = m;
    drop((rx, tx));
    within(serving).await.unwrap().unwrap();
    assert!(
        !closed.load(Ordering::SeqCst),
        "the close hook is for requested closes"
    );
}

#[tokio::test]
async fn a_bad_handshake_is_a_clear_error() {
    let mut hello = Hello::new(SlaveIdentity::local(1, "x"));
    hello.magic = *b"NOPE";
    let mut m = start(slave(Arc::default()));
    m.send(Frame::Hello(hello)).await;
    let err = within(m.serving).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            SlaveError::Protocol(distio_proto::ProtoError::BadMagic { .. })
        ),
        "{err}"
    );

    let mut m = start(slave(Arc::default()));
    m.send(Frame::Control(Control::Close)).await;
    let err = within(m.serving).await.unwrap().unwrap_err();
    assert!(
        matches!(err, SlaveError::UnexpectedFirstFrame("control")),
        "{err}"
    );

    let m = start(slave(Arc::default()));
    drop((m.rx, m.tx));
    let err = within(m.serving).await.unwrap().unwrap_err();
    assert!(matches!(err, SlaveError::NoHello), "{err}");
}

#[tokio::test]
async fn garbage_from_the_master_ends_serving_with_an_error() {
    let mut m = start(slave(Arc::default()));
    handshake(&mut m).await;
    let raw = m.tx.get_mut();
    raw.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0x7f])
        .await
        .unwrap();
    raw.flush().await.unwrap();
    let err = within(m.serving).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            SlaveError::Protocol(distio_proto::ProtoError::UnknownFrame { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn serve_outside_a_slave_process_says_so() {
    assert!(!distio_slave::launched_as_slave());
    let err = SlaveProcess::new().serve().await.unwrap_err();
    assert!(
        matches!(err, SlaveError::NotLaunchedAsSlave { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_result_too_large_for_a_frame_becomes_an_error_response() {
    let process = SlaveProcess::new()
        .max_frame_len(1024)
        .task("big", |n: usize, _| async move { R::Ok("x".repeat(n)) });
    let mut m = start(process);
    m.send(Frame::Hello(Hello::new(SlaveIdentity::local(5, "five"))))
        .await;
    assert!(matches!(m.recv().await, Frame::Ready(_)));
    m.request(1, "big", &4096usize).await;
    let err = m.response().await.outcome.unwrap_err();
    assert_eq!(err.kind, ErrorKind::HandlerFailed);
    assert!(
        err.message.contains("1024-byte frame limit"),
        "{}",
        err.message
    );
    // The slave carries on.
    m.request(2, "big", &10usize).await;
    assert_eq!(
        m.response()
            .await
            .outcome
            .unwrap()
            .decode::<String>()
            .unwrap(),
        "x".repeat(10)
    );
}

#[tokio::test]
async fn a_task_registered_twice_stops_serve_before_anything_is_read() {
    let (_master, ours) = tokio::io::duplex(1024);
    let result = SlaveProcess::new()
        .task("twice", |_: (), _| async { R::Ok(1u8) })
        .task("twice", |_: (), _| async { R::Ok(2u8) })
        .serve_on(ours)
        .await;
    assert!(
        matches!(&result, Err(distio_slave::SlaveError::DuplicateTask(name)) if name == "twice"),
        "{result:?}"
    );
}
