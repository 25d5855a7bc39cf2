//! A hand-driven master speaking raw frames to a slave served in this process.

#![allow(dead_code, unreachable_pub)]

use distio_proto::{Frame, FrameCodec, Hello, Metadata, Payload, Ready, Request, Response};
use distio_proto::{RequestId, SlaveIdentity};
use distio_slave::{SlaveError, SlaveProcess};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Bytes the in-memory pipe between master and slave holds in each direction.
pub const PIPE_CAPACITY: usize = 64 * 1024;

pub struct FakeMaster {
    pub rx: FramedRead<ReadHalf<DuplexStream>, FrameCodec>,
    pub tx: FramedWrite<WriteHalf<DuplexStream>, FrameCodec>,
    pub serving: JoinHandle<Result<(), SlaveError>>,
}

/// Fails the test instead of hanging if `fut` takes more than 30 s.
pub async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("hung for 30 s")
}

/// Serves `process` on a spawned task, over an in-memory pipe to the returned master.
pub fn start(process: SlaveProcess) -> FakeMaster {
    let (ours, theirs) = tokio::io::duplex(PIPE_CAPACITY);
    let serving = tokio::spawn(process.serve_on(theirs));
    let (r, w) = tokio::io::split(ours);
    FakeMaster {
        rx: FramedRead::new(r, FrameCodec::new()),
        tx: FramedWrite::new(w, FrameCodec::new()),
        serving,
    }
}

impl FakeMaster {
    pub async fn send(&mut self, frame: Frame) {
        self.tx.send(frame).await.unwrap();
    }

    pub async fn recv(&mut self) -> Frame {
        within(self.rx.next())
            .await
            .expect("a frame")
            .expect("a valid frame")
    }

    /// Says hello as master of slave #5 "five"; returns the slave's answer, checked.
    pub async fn handshake(&mut self) -> Ready {
        self.send(Frame::Hello(Hello::new(SlaveIdentity::local(5, "five"))))
            .await;
        let Frame::Ready(ready) = self.recv().await else {
            panic!("expected ready")
        };
        assert!(ready.check().is_ok());
        assert_eq!(
            (ready.id, ready.alias.as_str(), ready.pid),
            (5, "five", std::process::id())
        );
        ready
    }

    pub async fn request<T: serde::Serialize>(&mut self, id: RequestId, task: &str, data: &T) {
        let payload = Payload::encode(data).unwrap();
        self.send(Frame::Request(Request {
            id,
            task: task.into(),
            payload,
            meta: Metadata::new(),
        }))
        .await;
    }

    pub async fn response(&mut self) -> Response {
        match self.recv().await {
            Frame::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }
}
