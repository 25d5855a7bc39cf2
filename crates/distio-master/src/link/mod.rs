//! The duplex frame stream to one slave, one file per kind of link, and the tasks that
//! drive it.
//!
//! - `unix`: a Unix socket; senders write to it directly, the writer task finishes what
//!   they could not.
//! - `framed`: any sink and stream of frames; a writer task feeds the sink from a channel.
//! - `outbox`: how the slave's core hands a frame to either kind.
//! - `reader`: the reader task, the same for every kind.
//! - `side`: what a writer task needs from the slave it writes to.
//!
//! A new kind (a WebSocket) adds a `LinkKind` variant, its file here, and, if it writes
//! otherwise than through a channel, an `Outbox` variant.

use distio_proto::{Frame, FrameCodec, ProtoError};
use futures_util::{Sink, Stream};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::end::ProtocolViolation;

pub(crate) mod framed;
pub(crate) mod outbox;
pub(crate) mod reader;
pub(crate) mod side;
pub(crate) mod unix;

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
    /// A channel of a remote session: senders queue for the session's writer (see
    /// `remote/outbox.rs`); the session delivers the slave's frames to `stream`.
    Remote {
        parts: crate::remote::RemoteParts,
        stream: FrameStream,
    },
    /// A Unix socket: senders write to it directly (see `unix.rs`).
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

/// Why a link ended.
pub(crate) enum LinkEnd {
    /// The connection closed (or was told to close).
    Closed,
    /// The slave broke the protocol.
    Violation(ProtocolViolation),
}
