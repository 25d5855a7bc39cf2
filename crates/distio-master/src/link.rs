//! The duplex frame stream to one slave, and the two tasks that drive it.

use distio_proto::{Control, Frame, FrameCodec, Hello, ProtoError, Response, Throttle};
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::end::ProtocolViolation;
use crate::slave_core::{LinkEnd, SlaveCore};
use crate::writer_side::WriterSide;

/// The sending half of a [`Link`].
pub type FrameSink = Pin<Box<dyn Sink<Frame, Error = ProtoError> + Send>>;
/// The receiving half of a [`Link`].
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, ProtoError>> + Send>>;

/// The duplex frame stream to one slave, whatever carries it: the Unix socket a local
/// child inherits, an in-memory pipe in tests, or (later) a WebSocket to `distio-serve`.
///
/// ```
/// use distio_master::Link;
/// use distio_proto::FrameCodec;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let (ours, _theirs) = tokio::io::duplex(64 * 1024);
/// let link = Link::from_io(ours, FrameCodec::new());
/// # drop(link);
/// # });
/// ```
pub struct Link {
    pub(crate) kind: LinkKind,
}

/// What carries a link.
pub(crate) enum LinkKind {
    /// Any sink and stream of frames: written by the link's writer task.
    Framed {
        sink: FrameSink,
        stream: FrameStream,
    },
    /// A Unix socket: senders write to it directly (see `direct.rs`).
    Unix {
        read: OwnedReadHalf,
        write: OwnedWriteHalf,
    },
}

impl Link {
    /// A link from a sink and a stream of frames.
    pub fn new(sink: FrameSink, stream: FrameStream) -> Self {
        Link {
            kind: LinkKind::Framed { sink, stream },
        }
    }

    /// A link over any byte stream, framed with `codec`.
    pub fn from_io<IO>(io: IO, codec: FrameCodec) -> Self
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(io);
        Link::from_halves(reader, writer, codec)
    }

    /// A link over a Unix socket. Requests are written by the task that sends them, so a
    /// request reaches the socket without a hop through another task.
    pub fn from_unix(stream: tokio::net::UnixStream) -> Self {
        let (read, write) = stream.into_split();
        Link {
            kind: LinkKind::Unix { read, write },
        }
    }

    fn from_halves<R, W>(reader: R, writer: W, codec: FrameCodec) -> Self
    where
        R: AsyncRead + Send + 'static,
        W: AsyncWrite + Send + 'static,
    {
        Link::new(
            Box::pin(FramedWrite::new(writer, codec)),
            Box::pin(FramedRead::new(reader, codec)),
        )
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link")
    }
}

/// Sends the hello, waits for the handshake, then writes queued frames in batches: every
/// frame ready at once goes out with a single flush.
pub(crate) async fn run_writer<S: WriterSide>(
    core: Arc<S>,
    mut sink: FrameSink,
    mut outbox: UnboundedReceiver<Frame>,
    hello: Hello,
) {
    if let Err(err) = sink.send(Frame::Hello(hello)).await {
        tracing::debug!(slave = core.slave_id(), "could not send hello: {err}");
        core.end_link();
        return;
    }
    if !core.handshake_done().await {
        return;
    }
    let mut batch = Vec::with_capacity(64);
    // The first batch is always checked: requests queued during the handshake may have
    // timed out since.
    let mut seen_forgotten = core.forgotten().wrapping_sub(1);
    while outbox.recv_many(&mut batch, 256).await > 0 {
        // Frames of requests forgotten since they were queued are not sent.
        let forgotten = core.forgotten();
        if forgotten != seen_forgotten {
            seen_forgotten = forgotten;
            core.with_live_check(|live| {
                batch.retain(|frame| match frame {
                    Frame::Request(request) if !live(request.id) => {
                        core.room()
                            .release(core.codec().encoded_len(frame).unwrap_or(0));
                        false
                    }
                    _ => true,
                })
            });
        }
        for frame in batch.drain(..) {
            let len = core.codec().encoded_len(&frame).unwrap_or(0);
            let fed = sink.feed(frame).await;
            core.room().release(len);
            if let Err(err) = fed {
                tracing::warn!(slave = core.slave_id(), "writing to slave failed: {err}");
                core.end_link();
                return;
            }
        }
        if let Err(err) = sink.flush().await {
            tracing::debug!(slave = core.slave_id(), "flushing to slave failed: {err}");
            core.end_link();
            return;
        }
    }
}

/// Where a reader task takes frames from.
pub(crate) trait FrameSource:
    Stream<Item = Result<Frame, ProtoError>> + Unpin + Send + 'static
{
    /// False when nothing of a next frame has arrived (taking one would have to ask the
    /// socket, which most likely has nothing yet); true when it may have.
    fn more_arriving(&self) -> bool {
        true
    }
}

impl FrameSource for FrameStream {}

impl FrameSource for FramedRead<OwnedReadHalf, FrameCodec> {
    fn more_arriving(&self) -> bool {
        // A whole frame, or the start of one whose rest is on its way.
        !self.read_buffer().is_empty()
    }
}

/// Reads the slave's frames until the link ends, then settles the slave.
pub(crate) async fn run_reader<S: FrameSource>(core: Arc<SlaveCore>, mut stream: S) {
    let end = read_frames(&core, &mut stream).await;
    drop(stream);
    core.link_ended(end).await;
}

async fn read_frames<S: FrameSource>(core: &SlaveCore, stream: &mut S) -> LinkEnd {
    let first = tokio::select! {
        frame = stream.next() => frame,
        _ = core.end_link.notified() => return LinkEnd::Closed,
    };
    if let Err(end) = handshake(core, first) {
        return end;
    }
    let mut delivery = Delivery::default();
    loop {
        // The next frame if it is in or arriving; when nothing more has come, the responses
        // taken so far are handed over before the socket is asked again.
        let buffered = if stream.more_arriving() {
            stream.next().now_or_never()
        } else {
            None
        };
        let frame = match buffered {
            Some(frame) => frame,
            None => {
                delivery.flush(core);
                tokio::select! {
                    biased;
                    frame = stream.next() => frame,
                    _ = core.end_link.notified() => return LinkEnd::Closed,
                }
            }
        };
        if let Err(end) = delivery.take(core, frame) {
            return end;
        }
    }
}

/// Checks the slave's first frame, which must be a `Ready` that matches the hello.
fn handshake(core: &SlaveCore, first: Option<Result<Frame, ProtoError>>) -> Result<(), LinkEnd> {
    match first {
        Some(Ok(Frame::Ready(ready))) => core.accept_ready(ready).map_err(LinkEnd::Violation),
        Some(Ok(other)) => Err(LinkEnd::Violation(ProtocolViolation::NoReady {
            sent: other.kind(),
        })),
        Some(Err(err)) => Err(classify(err)),
        None => Err(LinkEnd::Closed),
    }
}

/// Hands what a slave sends after the handshake to where it goes. Responses that arrive
/// together are handed over together (one lock of the pending table for all of them).
#[derive(Default)]
struct Delivery {
    responses: Vec<Response>,
    wakers: Vec<Waker>,
}

impl Delivery {
    /// Takes the next item read from the link; `Err` when the link must end.
    fn take(
        &mut self,
        core: &SlaveCore,
        frame: Option<Result<Frame, ProtoError>>,
    ) -> Result<(), LinkEnd> {
        if let Some(Ok(Frame::Response(response))) = frame {
            self.responses.push(response);
            if self.responses.len() >= RESPONSE_BATCH {
                self.flush(core);
            }
            return Ok(());
        }
        // Anything else is seen after the responses that came before it, and a link that
        // ends still delivers them.
        self.flush(core);
        match frame {
            Some(Ok(Frame::Response(_))) => Ok(()),
            Some(Ok(Frame::Event(event))) => {
                core.publish(event);
                Ok(())
            }
            Some(Ok(Frame::Control(Control::Pong(nonce)))) => {
                core.pong(nonce);
                Ok(())
            }
            Some(Ok(Frame::Control(Control::Ping(nonce)))) => {
                // A slave that pings without reading gets no answers queued without limit.
                if core.room.is_full() {
                    static UNANSWERED: Throttle = Throttle::new(Duration::from_secs(10));
                    if let Some(suppressed) = UNANSWERED.allow() {
                        tracing::warn!(
                            slave = core.id,
                            suppressed,
                            "not answering a slave's ping: it is not reading what it is sent"
                        );
                    }
                } else {
                    let _ = core.send_frame(&Frame::Control(Control::Pong(nonce)));
                }
                Ok(())
            }
            Some(Ok(other)) => Err(LinkEnd::Violation(ProtocolViolation::UnexpectedFrame {
                kind: other.kind(),
            })),
            Some(Err(err)) => Err(classify(err)),
            None => Err(LinkEnd::Closed),
        }
    }

    /// Hands over the responses taken so far.
    fn flush(&mut self, core: &SlaveCore) {
        if !self.responses.is_empty() {
            core.complete(&mut self.responses, &mut self.wakers);
        }
    }
}

/// Responses handed over at most at once.
const RESPONSE_BATCH: usize = 256;

fn classify(err: ProtoError) -> LinkEnd {
    match err {
        ProtoError::Io(_) => LinkEnd::Closed,
        other => LinkEnd::Violation(ProtocolViolation::InvalidFrame(Arc::new(other))),
    }
}
