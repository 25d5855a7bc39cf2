//! How the slave's core hands a frame to its link, whatever the kind.

use distio_proto::{Frame, FrameCodec, ProtoError};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

use super::unix::{DirectWriter, Flush};
use crate::room::Room;

/// How frames reach the slave.
pub(crate) enum Outbox {
    /// Through a channel to the link's writer task (any kind of link; see `framed.rs`).
    Channel(UnboundedSender<Frame>),
    /// Written by the sender itself (Unix-socket links; see `unix.rs`).
    Direct(Arc<DirectWriter>),
    /// Encoded by the sender and queued for its host's session (remote slaves).
    Remote(Arc<crate::remote::RemoteOutbox>),
}

impl Outbox {
    /// Queues `frame`, counting its bytes in `room` until they are written; `batch` says
    /// more frames are likely to follow soon. Returns the flush the caller now owns, if it
    /// claimed one (see [`Flush`]). An `Io` error means the write failed and the link must
    /// end.
    #[inline]
    pub(crate) fn send(
        &self,
        frame: &Frame,
        batch: bool,
        codec: FrameCodec,
        room: &Room,
    ) -> Result<Option<Flush>, ProtoError> {
        match self {
            Outbox::Channel(tx) => {
                // Counted as the bytes it will take on the wire; its writer releases them.
                let len = codec.encoded_len(frame)?;
                // Added before the writer task can release it.
                room.add(len);
                if tx.send(frame.clone()).is_err() {
                    room.release(len);
                }
                Ok(None)
            }
            Outbox::Direct(writer) => writer.send(frame, !batch),
            Outbox::Remote(outbox) => outbox.send(frame).map(|()| None),
        }
    }
}
