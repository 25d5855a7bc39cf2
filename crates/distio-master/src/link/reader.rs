//! The link's reader task: takes the slave's frames, checks the handshake and hands what
//! comes after to where it goes (any link kind).

use distio_proto::{Control, Frame, FrameCodec, ProtoError, Response, Throttle};
use futures_util::{FutureExt, Stream, StreamExt};
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;
use tokio::net::unix::OwnedReadHalf;
use tokio_util::codec::FramedRead;

use super::{FrameStream, LinkEnd};
use crate::end::ProtocolViolation;
use crate::slave_core::SlaveCore;

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
