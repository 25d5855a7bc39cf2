//! One slave's socket and its session: frames cross as opaque bodies.
//!
//! Toward the slave, a body from the session is written behind its 4-byte big-endian
//! length; small frames that arrive together are gathered into one write, a large body is
//! written from where it is (no copy). From the slave, a frame's length
//! is read and checked, its body read into a buffer with [`ROUTED_HEADER_LEN`] spare bytes
//! in front, where the routed header goes: that buffer is the WebSocket message (no
//! second copy).

use bytes::{Bytes, BytesMut};
use distio_master::Signal;
use distio_master::hosted::Signaller;
use distio_proto::Throttle;
use distio_proto::remote::passphrase::TAG_LEN;
use distio_proto::remote::{Channel, ROUTED_HEADER_LEN, ServerSession};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::lifetime::Command;
use super::outbox::Outbox;

static TOO_LARGE: Throttle = Throttle::new(Duration::from_secs(10));

/// A body for the slave and the room it holds in the slave's inbox.
pub(crate) type Inbound = (Bytes, OwnedSemaphorePermit);

/// The session's side of a running slave: its inbox (bounded in bytes) and its
/// commands.
#[derive(Debug)]
pub(crate) struct SlaveLink {
    inbox: mpsc::UnboundedSender<Inbound>,
    room: Arc<Semaphore>,
    limit: usize,
    commands: mpsc::Sender<Command>,
}

/// The slave task's side of a [`SlaveLink`].
#[derive(Debug)]
pub(crate) struct SlaveEnds {
    pub(crate) inbox: mpsc::UnboundedReceiver<Inbound>,
    pub(crate) commands: mpsc::Receiver<Command>,
}

impl SlaveLink {
    /// A link whose inbox holds at most `limit` bytes (a larger body takes all of it).
    pub(crate) fn new(limit: usize) -> (Self, SlaveEnds) {
        let limit = limit.clamp(1, u32::MAX as usize);
        let (inbox, inbox_rx) = mpsc::unbounded_channel();
        // Commands are a kill or an end now and then; more than this waiting is a master
        // flooding kills, whose excess is dropped.
        let (commands, commands_rx) = mpsc::channel(16);
        let link = SlaveLink {
            inbox,
            room: Arc::new(Semaphore::new(limit)),
            limit,
            commands,
        };
        (
            link,
            SlaveEnds {
                inbox: inbox_rx,
                commands: commands_rx,
            },
        )
    }

    /// Queues `body` for the slave, waiting for room. False if the slave is gone.
    pub(crate) async fn send(&self, body: Bytes) -> bool {
        let weight = body.len().clamp(1, self.limit) as u32;
        let Ok(permit) = Arc::clone(&self.room).acquire_many_owned(weight).await else {
            return false;
        };
        self.inbox.send((body, permit)).is_ok()
    }

    /// Queues `body` for the slave if its inbox has room now: `Ok(false)` if the slave is
    /// gone, `Err(body)` if it must wait for room (see [`send`](Self::send)).
    pub(crate) fn try_send(&self, body: Bytes) -> Result<bool, Bytes> {
        let weight = body.len().clamp(1, self.limit) as u32;
        match Arc::clone(&self.room).try_acquire_many_owned(weight) {
            Ok(permit) => Ok(self.inbox.send((body, permit)).is_ok()),
            Err(tokio::sync::TryAcquireError::NoPermits) => Err(body),
            Err(tokio::sync::TryAcquireError::Closed) => Ok(false),
        }
    }

    /// Hands the slave's task a command; dropped if it has too many waiting.
    pub(crate) fn command(&self, command: Command) {
        if self.commands.try_send(command).is_err() {
            tracing::debug!("a slave's command queue is full; a command was dropped");
        }
    }
}

/// Relays until the slave's socket ends (or breaks the frame limit, which kills the
/// slave's group, or the session closes).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<R, W>(
    reader: R,
    writer: W,
    inbox: mpsc::UnboundedReceiver<Inbound>,
    channel: Channel,
    session: &Mutex<ServerSession>,
    outbox: &Outbox,
    max_frame_len: usize,
    signaller: &Signaller,
    metrics: &crate::admin::Metrics,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let from_slave = read_frames(
        reader,
        channel,
        session,
        outbox,
        max_frame_len,
        signaller,
        metrics,
    );
    let to_slave = async {
        if let Err(err) = write_frames(writer, inbox).await {
            tracing::debug!(channel, "cannot write to a slave's socket: {err}");
        }
        // The reader decides when the relay ends.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = from_slave => {}
        () = to_slave => {}
    }
}

async fn read_frames<R: AsyncRead + Unpin>(
    reader: R,
    channel: Channel,
    session: &Mutex<ServerSession>,
    outbox: &Outbox,
    max_frame_len: usize,
    signaller: &Signaller,
    metrics: &crate::admin::Metrics,
) {
    // Small frames come in batches through the buffer; a large body is read straight into
    // its message (the buffer is bypassed while it is empty).
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    loop {
        let mut prefix = [0u8; 4];
        if reader.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(prefix) as usize;
        if len > max_frame_len {
            if let Some(suppressed) = TOO_LARGE.allow() {
                tracing::warn!(
                    channel,
                    len,
                    max_frame_len,
                    suppressed,
                    "a slave wrote a frame over the limit; it is killed"
                );
            }
            let _ = signaller.signal_group(Signal::KILL);
            return;
        }
        // Room for a sealed record's tag too, so sealing (passphrase mode) does not copy.
        let mut message = BytesMut::with_capacity(ROUTED_HEADER_LEN + len + TAG_LEN);
        message.resize(ROUTED_HEADER_LEN + len, 0);
        if reader
            .read_exact(&mut message[ROUTED_HEADER_LEN..])
            .await
            .is_err()
        {
            return;
        }
        let header = session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .routed_header(channel);
        let Some(header) = header else {
            // The session is closing: nobody takes the slave's frames any more.
            return;
        };
        message[..ROUTED_HEADER_LEN].copy_from_slice(&header);
        metrics.frame_to_master(len);
        if !outbox.send(message.freeze()).await {
            return;
        }
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(
    writer: W,
    mut inbox: mpsc::UnboundedReceiver<Inbound>,
) -> std::io::Result<()> {
    // Small frames that arrive together go out in one write through the buffer; a body at
    // least as large as the buffer bypasses it and is written from where it is.
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
    while let Some((body, _room)) = inbox.recv().await {
        let len = u32::try_from(body.len()).map_err(|_| std::io::Error::other("frame too long"))?;
        writer.write_all(&len.to_be_bytes()).await?;
        writer.write_all(&body).await?;
        if inbox.is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await
}

/// The buffer small frames toward a slave are gathered in.
const WRITE_BUFFER: usize = 64 * 1024;
