//! A remote slave's outbox: its frames are encoded by the task that sends them, straight
//! into the message that routes them, and queued for the session's writer — no task of
//! the slave's own in between.

use bytes::BytesMut;
use distio_proto::remote::passphrase::TAG_LEN;
use distio_proto::remote::{Channel, ROUTED_HEADER_LEN, SessionCodec};
use distio_proto::{Frame, Hello, ProtoError, RequestId};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::tungstenite::Message;

use crate::link::side::WriterSide;
use crate::room::Room;
use crate::sync::lock;

/// A message for the session's writer, and the slave room its bytes hold until it is
/// written (or dropped: the room comes back either way).
pub(crate) struct Outgoing {
    pub(crate) message: Message,
    pub(crate) release: Release,
}

impl Outgoing {
    /// A session message of no slave's (spawn, kill, ping).
    pub(crate) fn control(message: Message) -> Self {
        Outgoing {
            message,
            release: Release(None),
        }
    }
}

/// Gives a slave's room back its bytes when dropped.
pub(crate) struct Release(Option<(Arc<Room>, usize)>);

impl Drop for Release {
    fn drop(&mut self) {
        if let Some((room, len)) = self.0.take() {
            room.release(len);
        }
    }
}

/// Frames held until the slave's handshake is done (the hello goes first).
struct Gate {
    open: bool,
    held: Vec<(Option<RequestId>, Outgoing)>,
}

/// What a remote link's outbox is made of, before the slave's room exists.
pub(crate) struct RemoteParts {
    pub(crate) tx: UnboundedSender<Outgoing>,
    pub(crate) codec: SessionCodec,
    pub(crate) channel: Channel,
}

impl RemoteParts {
    pub(crate) fn outbox(self, room: Arc<Room>) -> Arc<RemoteOutbox> {
        Arc::new(RemoteOutbox::new(self.tx, self.codec, self.channel, room))
    }
}

/// The sending side of a remote slave's link.
pub(crate) struct RemoteOutbox {
    tx: UnboundedSender<Outgoing>,
    codec: SessionCodec,
    channel: Channel,
    room: Arc<Room>,
    gate: Mutex<Gate>,
}

impl RemoteOutbox {
    pub(crate) fn new(
        tx: UnboundedSender<Outgoing>,
        codec: SessionCodec,
        channel: Channel,
        room: Arc<Room>,
    ) -> Self {
        RemoteOutbox {
            tx,
            codec,
            channel,
            room,
            gate: Mutex::new(Gate {
                open: false,
                held: Vec::new(),
            }),
        }
    }

    fn encode(&self, frame: &Frame) -> Result<Outgoing, ProtoError> {
        // Sized up front (a walk of the frame, no copy), so encoding never reallocates.
        let body = self.codec.frame_codec().encoded_len(frame)?;
        // With room for a sealed record's tag (passphrase mode), so sealing does not copy.
        let mut buf = BytesMut::with_capacity(ROUTED_HEADER_LEN + body + TAG_LEN);
        self.codec.encode_routed(self.channel, frame, &mut buf)?;
        let len = buf.len();
        self.room.add(len);
        Ok(Outgoing {
            message: Message::Binary(buf.freeze()),
            release: Release(Some((Arc::clone(&self.room), len))),
        })
    }

    fn queue(&self, out: Outgoing) {
        // Refused once the session has ended (the link ends with it); the room comes back
        // as the message is dropped.
        let _ = self.tx.send(out);
    }

    /// Queues `frame` for the session's writer (held until the handshake is done).
    pub(crate) fn send(&self, frame: &Frame) -> Result<(), ProtoError> {
        let out = self.encode(frame)?;
        let mut gate = lock(&self.gate);
        if gate.open {
            drop(gate);
            self.queue(out);
        } else {
            let id = match frame {
                Frame::Request(request) => Some(request.id),
                _ => None,
            };
            gate.held.push((id, out));
        }
        Ok(())
    }

    /// Sends the hello, waits for the handshake, then lets the frames held meanwhile go
    /// (but those of requests that timed out or were dropped since) and opens the gate.
    pub(crate) async fn run<S: WriterSide>(self: Arc<Self>, core: Arc<S>, hello: Hello) {
        match self.encode(&Frame::Hello(hello)) {
            Ok(out) => self.queue(out),
            Err(err) => {
                tracing::warn!(slave = core.slave_id(), "could not encode the hello: {err}");
                core.end_link();
                return;
            }
        }
        let ready = core.handshake_done().await;
        let mut gate = lock(&self.gate);
        let held = std::mem::take(&mut gate.held);
        if !ready {
            drop(gate);
            return;
        }
        core.with_live_check(|live| {
            for (id, out) in held {
                match id {
                    Some(id) if !live(id) => drop(out),
                    _ => self.queue(out),
                }
            }
        });
        gate.open = true;
    }
}
