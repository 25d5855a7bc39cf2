//! The framed link kind: frames go through a channel to the link's writer task, which
//! feeds them to any sink of frames.

use distio_proto::{Frame, Hello};
use futures_util::SinkExt;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

use super::FrameSink;
use super::side::WriterSide;

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
