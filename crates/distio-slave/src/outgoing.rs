//! Writing to the master: one frame (with the size limit applied), the events the close
//! hook emits, and the last frames before the slave exits.

use distio_proto::{ErrorKind, Frame, FrameCodec, ProtoError, Response, TaskError, Throttle};
use futures_util::SinkExt;
use std::future::Future;
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc::Receiver;
use tokio_util::codec::FramedWrite;

use crate::limits::WARN_INTERVAL;

/// How long a closing slave waits for its last frames to be written.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Frames other than responses (events) over the size limit, dropped.
static OVERSIZED_FRAME: Throttle = Throttle::new(WARN_INTERVAL);

/// Queues one frame for writing; a response too large for a frame becomes an error response.
pub(crate) async fn feed<W: AsyncWrite + Unpin>(
    sink: &mut FramedWrite<W, FrameCodec>,
    frame: Frame,
) -> Result<(), ProtoError> {
    match sink.feed(&frame).await {
        Err(ProtoError::FrameTooLarge { len, max }) => match frame {
            Frame::Response(Response { request, slave, .. }) => {
                let error = TaskError::new(
                    ErrorKind::HandlerFailed,
                    format!("the result is {len} bytes, more than the {max}-byte frame limit"),
                );
                sink.feed(&Frame::Response(Response {
                    request,
                    slave,
                    outcome: Err(error),
                }))
                .await
            }
            other => {
                if let Some(suppressed) = OVERSIZED_FRAME.allow() {
                    tracing::warn!(
                        kind = other.kind(),
                        len,
                        max,
                        "dropping a frame over the size limit \
                         ({suppressed} more dropped since the last such warning)"
                    );
                }
                Ok(())
            }
        },
        result => result,
    }
}

/// Runs `work` (the close hook) while writing the events queued meanwhile, so that one
/// waiting for room in the queue ([`SlaveHandle::emit_wait`](crate::SlaveHandle::emit_wait)) is not stuck behind it.
///
/// An event leaves the queue only once the sink has room for it, so none is lost when
/// `work` finishes mid-write: the rest is flushed with the last frames.
pub(crate) async fn while_forwarding<W: AsyncWrite + Unpin>(
    work: impl Future<Output = ()>,
    outbox: &mut Receiver<Frame>,
    sink: &mut FramedWrite<W, FrameCodec>,
) {
    let forward = async {
        loop {
            std::future::poll_fn(|cx| SinkExt::<&Frame>::poll_ready_unpin(sink, cx)).await?;
            let Some(frame) = outbox.recv().await else {
                return Ok(());
            };
            feed(sink, frame).await?;
            if outbox.is_empty() {
                SinkExt::<&Frame>::flush(sink).await?;
            }
        }
    };
    let mut work = std::pin::pin!(work);
    let forwarded: Result<(), ProtoError> = tokio::select! {
        () = &mut work => return,
        forwarded = forward => forwarded,
    };
    // The master cannot be written to: refuse further events rather than let the hook
    // wait for room that never comes. The last flush reports the error.
    if let Err(err) = forwarded {
        tracing::debug!("stopped sending events during the close hook: {err}");
    }
    outbox.close();
    work.await;
}

/// Writes what is still queued (the events emitted until now) and flushes, giving up
/// after a grace period if the master does not read. Nothing joins the queue any more.
pub(crate) async fn flush_last<W: AsyncWrite + Unpin>(
    outbox: &mut Receiver<Frame>,
    sink: &mut FramedWrite<W, FrameCodec>,
) {
    outbox.close();
    let last = async {
        while let Ok(frame) = outbox.try_recv() {
            feed(sink, frame).await?;
        }
        SinkExt::<&Frame>::flush(sink).await
    };
    match tokio::time::timeout(FLUSH_GRACE, last).await {
        Ok(Err(err)) => tracing::warn!("could not send the last frames to the master: {err}"),
        Err(_) => tracing::warn!("the master stopped reading; last frames dropped"),
        Ok(Ok(())) => {}
    }
}
