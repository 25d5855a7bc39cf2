//! One remote slave as its session and its handle see it: the frames coming to it, how it
//! ended, how its output is shown, and the way to signal it.

use bytes::Bytes;
use distio_proto::remote::{Channel, ExitCause, SessionCodec};
use distio_proto::{Frame, ProtoError};
use futures_util::Stream;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

use super::loss::HostLoss;
use super::session::Session;
use crate::spawn::Captured;
use crate::sync::lock;
use crate::{Output, Signal};

/// How a remote slave ended.
#[derive(Clone, Debug)]
pub(crate) enum RemoteEnd {
    /// The server reported its exit.
    Exited {
        status: ExitStatus,
        cause: ExitCause,
    },
    /// The session with its host ended first.
    Lost(HostLoss),
}

/// Where a remote slave's output goes.
pub(crate) enum OutputRoute {
    Prefixed(String),
    Inherit,
    Capture(Arc<Captured>),
    Null,
}

impl OutputRoute {
    pub(crate) fn new(output: Output, label: &str) -> Self {
        match output {
            Output::Prefixed => OutputRoute::Prefixed(format!("[{label}] ")),
            Output::Inherit => OutputRoute::Inherit,
            Output::Capture => OutputRoute::Capture(Arc::new(Captured::default())),
            Output::Null => OutputRoute::Null,
        }
    }

    pub(crate) fn captured(&self) -> Option<Arc<Captured>> {
        match self {
            OutputRoute::Capture(store) => Some(Arc::clone(store)),
            _ => None,
        }
    }
}

/// The session's record of one channel.
pub(crate) struct RemoteChannel {
    pub(crate) channel: Channel,
    /// Taken (dropped) when the channel ends, which ends the slave's frame stream after
    /// what was already delivered.
    frames: Mutex<Option<mpsc::Sender<Bytes>>>,
    end: watch::Sender<Option<RemoteEnd>>,
    pub(crate) output: OutputRoute,
    /// Lines of output the master could not print fast enough (or the server dropped).
    pub(crate) lost_lines: std::sync::atomic::AtomicU64,
}

/// Frames waiting for a remote slave's reader, per slave.
const FRAMES_QUEUED: usize = 256;

impl RemoteChannel {
    pub(crate) fn new(channel: Channel, output: OutputRoute) -> (Arc<Self>, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(FRAMES_QUEUED);
        let me = RemoteChannel {
            channel,
            frames: Mutex::new(Some(tx)),
            end: watch::Sender::new(None),
            output,
            lost_lines: Default::default(),
        };
        (Arc::new(me), rx)
    }

    /// Where to deliver the slave's frames, while the channel lasts.
    pub(crate) fn frames(&self) -> Option<mpsc::Sender<Bytes>> {
        lock(&self.frames).clone()
    }

    /// Records how the slave ended, then ends its frame stream. The first end counts.
    pub(crate) fn finish(&self, end: RemoteEnd) {
        self.end.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(end);
                true
            } else {
                false
            }
        });
        lock(&self.frames).take();
    }

    /// How the slave ended, waiting at most `limit` for it.
    pub(crate) async fn wait_end(&self, limit: Duration) -> Option<RemoteEnd> {
        let mut rx = self.end.subscribe();
        let waited = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
        waited.ok().and_then(|r| r.ok().and_then(|e| e.clone()))
    }
}

/// What a remote slave's core holds: its channel and the session to reach it through.
pub(crate) struct RemoteProcess {
    pub(crate) session: Arc<Session>,
    pub(crate) channel: Arc<RemoteChannel>,
}

impl RemoteProcess {
    /// Asks the server to signal the slave. Not waiting: the kill is queued for the
    /// session's writer.
    pub(crate) fn signal(&self, signal: Signal) {
        self.session.kill(self.channel.channel, signal);
    }

    /// The host, for messages.
    pub(crate) fn host(&self) -> String {
        self.session.host.to_string()
    }
}

impl Drop for RemoteProcess {
    /// The last handle of a slave that still runs is gone: nobody can reach it any more,
    /// so its server is told to kill it (nothing is sent for a slave that has ended).
    fn drop(&mut self) {
        self.session.kill(self.channel.channel, Signal::KILL);
    }
}

/// The receiving half of a remote slave's link: the bodies the session delivers, decoded
/// here (on the slave's reader task, not the session's).
pub(crate) struct ChannelStream {
    rx: mpsc::Receiver<Bytes>,
    codec: SessionCodec,
}

impl ChannelStream {
    pub(crate) fn new(rx: mpsc::Receiver<Bytes>, codec: SessionCodec) -> Self {
        ChannelStream { rx, codec }
    }
}

impl Stream for ChannelStream {
    type Item = Result<Frame, ProtoError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let codec = self.codec.frame_codec();
        self.rx
            .poll_recv(cx)
            .map(|body| body.map(|body| codec.decode_body_bytes(&body)))
    }
}
