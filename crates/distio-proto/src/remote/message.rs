//! One session frame per WebSocket message: the tag, then the frame.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::frames::{
    Channel, Closing, Exited, Kill, Open, Output, Spawn, SpawnFailed, Spawned, Status, Welcome,
};
use super::passphrase::{PassphraseChallenge, PassphraseConfirm, PassphraseHello, PassphraseProof};
use super::resume::{Ack, Resume, ResumeToken, Resumed};
use crate::{Frame, FrameCodec, ProtoError, wire};

/// Bytes before a routed slave frame's body: the tag and the channel, each a
/// little-endian `u32`.
pub const ROUTED_HEADER_LEN: usize = 8;

/// Everything that crosses a remote session: one WebSocket binary message each.
///
/// A message starts with the frame's tag as a little-endian `u32`. Session tags start at
/// [`SessionFrame::FIRST_TAG`] (6), after the slave frames' tags, so a message can never be
/// mistaken for a slave frame. [`SessionFrame::Routed`] carries a slave's frame body as it
/// is after an 8-byte header (tag, channel), so a server relays it without decoding it;
/// every other frame is its struct in the same bincode encoding as the slave frames.
///
/// ```
/// use bytes::Bytes;
/// use distio_proto::remote::{SessionCodec, SessionFrame, Kill};
///
/// let codec = SessionCodec::new();
/// let message = codec.encode(&SessionFrame::Kill(Kill { channel: 3, signal: 15 }))?;
/// assert_eq!(&message[..4], &13u32.to_le_bytes());
/// assert_eq!(codec.decode(&message)?, SessionFrame::Kill(Kill { channel: 3, signal: 15 }));
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionFrame {
    /// Tag 6, master → server, first: see [`Open`].
    Open(Open),
    /// Tag 7, server → master, first: see [`Welcome`].
    Welcome(Welcome),
    /// Tag 8, master → server: see [`Spawn`].
    Spawn(Spawn),
    /// Tag 9, server → master: see [`Spawned`].
    Spawned(Spawned),
    /// Tag 10, server → master: see [`SpawnFailed`].
    SpawnFailed(SpawnFailed),
    /// Tag 11, either way: one frame of the slave on `channel`, its body as the slave link
    /// carries it (without the length prefix).
    Routed {
        /// The slave's channel.
        channel: Channel,
        /// The slave frame's body.
        body: Bytes,
    },
    /// Tag 12, server → master: see [`Output`].
    Output(Output),
    /// Tag 13, master → server: see [`Kill`].
    Kill(Kill),
    /// Tag 14, server → master: see [`Exited`].
    Exited(Exited),
    /// Tag 15, either way, last: see [`Closing`].
    Closing(Closing),
    /// Tag 16, master → server, first in passphrase mode: see [`PassphraseHello`].
    PassphraseHello(PassphraseHello),
    /// Tag 17, server → master: see [`PassphraseChallenge`].
    PassphraseChallenge(PassphraseChallenge),
    /// Tag 18, master → server: see [`PassphraseProof`].
    PassphraseProof(PassphraseProof),
    /// Tag 19, server → master, the last unsealed message: see [`PassphraseConfirm`].
    PassphraseConfirm(PassphraseConfirm),
    /// Tag 20, server → master, after the welcome and once per heartbeat interval: see
    /// [`Status`].
    Status(Status),
    /// Tag 21, server → master, right after the welcome: see [`ResumeToken`].
    ResumeToken(ResumeToken),
    /// Tag 22, master → server, first on a new connection instead of open: see [`Resume`].
    Resume(Resume),
    /// Tag 23, server → master, the answer to a resume: see [`Resumed`].
    Resumed(Resumed),
    /// Tag 24, either way: see [`Ack`].
    Ack(Ack),
}

impl SessionFrame {
    /// The tag of the first session frame kind.
    pub const FIRST_TAG: u32 = 6;
    /// One past the tag of the last session frame kind this version knows.
    pub const END_TAG: u32 = 25;
    /// The tag of [`SessionFrame::Routed`].
    pub const ROUTED_TAG: u32 = 11;

    /// The frame's wire tag.
    pub fn tag(&self) -> u32 {
        match self {
            SessionFrame::Open(_) => 6,
            SessionFrame::Welcome(_) => 7,
            SessionFrame::Spawn(_) => 8,
            SessionFrame::Spawned(_) => 9,
            SessionFrame::SpawnFailed(_) => 10,
            SessionFrame::Routed { .. } => Self::ROUTED_TAG,
            SessionFrame::Output(_) => 12,
            SessionFrame::Kill(_) => 13,
            SessionFrame::Exited(_) => 14,
            SessionFrame::Closing(_) => 15,
            SessionFrame::PassphraseHello(_) => 16,
            SessionFrame::PassphraseChallenge(_) => 17,
            SessionFrame::PassphraseProof(_) => 18,
            SessionFrame::PassphraseConfirm(_) => 19,
            SessionFrame::Status(_) => 20,
            SessionFrame::ResumeToken(_) => 21,
            SessionFrame::Resume(_) => 22,
            SessionFrame::Resumed(_) => 23,
            SessionFrame::Ack(_) => 24,
        }
    }

    /// A short lowercase name for the frame's kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionFrame::Open(_) => "open",
            SessionFrame::Welcome(_) => "welcome",
            SessionFrame::Spawn(_) => "spawn",
            SessionFrame::Spawned(_) => "spawned",
            SessionFrame::SpawnFailed(_) => "spawn-failed",
            SessionFrame::Routed { .. } => "routed",
            SessionFrame::Output(_) => "output",
            SessionFrame::Kill(_) => "kill",
            SessionFrame::Exited(_) => "exited",
            SessionFrame::Closing(_) => "closing",
            SessionFrame::PassphraseHello(_) => "passphrase-hello",
            SessionFrame::PassphraseChallenge(_) => "passphrase-challenge",
            SessionFrame::PassphraseProof(_) => "passphrase-proof",
            SessionFrame::PassphraseConfirm(_) => "passphrase-confirm",
            SessionFrame::Status(_) => "status",
            SessionFrame::ResumeToken(_) => "resume-token",
            SessionFrame::Resume(_) => "resume",
            SessionFrame::Resumed(_) => "resumed",
            SessionFrame::Ack(_) => "ack",
        }
    }

    /// True if a message with this tag is counted for acknowledgement and replay: spawn,
    /// spawned, spawn-failed, routed, output, kill and exited (tags 8 to 14). The
    /// handshakes' frames, closing and acks are not.
    ///
    /// ```
    /// use distio_proto::remote::SessionFrame;
    /// assert!(SessionFrame::is_counted_tag(SessionFrame::ROUTED_TAG));
    /// assert!(!SessionFrame::is_counted_tag(24));
    /// ```
    pub const fn is_counted_tag(tag: u32) -> bool {
        matches!(tag, 8..=14)
    }

    /// True if `message` (an encoded session frame) is counted: see
    /// [`is_counted_tag`](Self::is_counted_tag).
    pub fn is_counted(message: &[u8]) -> bool {
        message
            .first_chunk::<4>()
            .is_some_and(|tag| Self::is_counted_tag(u32::from_le_bytes(*tag)))
    }
}

/// The 8 bytes before a routed slave frame's body on `channel`.
///
/// ```
/// use distio_proto::remote::routed_header;
/// assert_eq!(routed_header(2), [11, 0, 0, 0, 2, 0, 0, 0]);
/// ```
pub fn routed_header(channel: Channel) -> [u8; ROUTED_HEADER_LEN] {
    let mut header = [0; ROUTED_HEADER_LEN];
    header[..4].copy_from_slice(&SessionFrame::ROUTED_TAG.to_le_bytes());
    header[4..].copy_from_slice(&channel.to_le_bytes());
    header
}

/// Encodes and decodes [`SessionFrame`]s, one per message, with a limit on a routed slave
/// frame's body (the slave links' frame limit; a whole message may be
/// [`ROUTED_HEADER_LEN`] bytes longer).
///
/// ```
/// use bytes::BytesMut;
/// use distio_proto::remote::{SessionCodec, SessionFrame};
/// use distio_proto::{Control, Frame};
///
/// let codec = SessionCodec::new();
/// let mut buf = BytesMut::new();
/// codec.encode_routed(4, &Frame::Control(Control::Ping(1)), &mut buf)?;
/// let SessionFrame::Routed { channel, body } = codec.decode(&buf.freeze())? else { panic!() };
/// assert_eq!(channel, 4);
/// assert_eq!(codec.frame_codec().decode_body(&body)?, Frame::Control(Control::Ping(1)));
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionCodec {
    frames: FrameCodec,
}

impl SessionCodec {
    /// A codec with the default frame limit ([`DEFAULT_MAX_FRAME_LEN`](crate::DEFAULT_MAX_FRAME_LEN)).
    pub const fn new() -> Self {
        SessionCodec {
            frames: FrameCodec::new(),
        }
    }

    /// A codec whose routed slave frames may be at most `max` bytes long.
    pub const fn with_max_frame_len(max: usize) -> Self {
        SessionCodec {
            frames: FrameCodec::with_max_frame_len(max),
        }
    }

    /// The codec of the slave frames routed through the session.
    pub const fn frame_codec(&self) -> FrameCodec {
        self.frames
    }

    /// The longest message this codec writes or accepts.
    pub const fn max_message_len(&self) -> usize {
        self.frames.max_frame_len() + ROUTED_HEADER_LEN
    }

    /// Encodes `frame` as one message.
    pub fn encode(&self, frame: &SessionFrame) -> Result<Bytes, ProtoError> {
        let mut out = BytesMut::new();
        out.put_u32_le(frame.tag());
        match frame {
            SessionFrame::Routed { channel, body } => {
                self.check(body.len(), self.frames.max_frame_len())?;
                out.put_u32_le(*channel);
                out.extend_from_slice(body);
                return Ok(out.freeze());
            }
            SessionFrame::Open(f) => put(&mut out, f)?,
            SessionFrame::Welcome(f) => put(&mut out, f)?,
            SessionFrame::Spawn(f) => put(&mut out, f)?,
            SessionFrame::Spawned(f) => put(&mut out, f)?,
            SessionFrame::SpawnFailed(f) => put(&mut out, f)?,
            SessionFrame::Output(f) => put(&mut out, f)?,
            SessionFrame::Kill(f) => put(&mut out, f)?,
            SessionFrame::Exited(f) => put(&mut out, f)?,
            SessionFrame::Closing(f) => put(&mut out, f)?,
            SessionFrame::PassphraseHello(f) => put(&mut out, f)?,
            SessionFrame::PassphraseChallenge(f) => put(&mut out, f)?,
            SessionFrame::PassphraseProof(f) => put(&mut out, f)?,
            SessionFrame::PassphraseConfirm(f) => put(&mut out, f)?,
            SessionFrame::Status(f) => put(&mut out, f)?,
            SessionFrame::ResumeToken(f) => put(&mut out, f)?,
            SessionFrame::Resume(f) => put(&mut out, f)?,
            SessionFrame::Resumed(f) => put(&mut out, f)?,
            SessionFrame::Ack(f) => put(&mut out, f)?,
        }
        self.check(out.len(), self.max_message_len())?;
        Ok(out.freeze())
    }

    /// Appends the message routing the slave frame `frame` on `channel` to `dst`: the
    /// header, then the frame's body encoded straight after it (no copy of its payload
    /// beyond the one encoding makes). On error `dst` is left as it was.
    pub fn encode_routed(
        &self,
        channel: Channel,
        frame: &Frame,
        dst: &mut BytesMut,
    ) -> Result<(), ProtoError> {
        let start = dst.len();
        dst.extend_from_slice(&routed_header(channel));
        self.frames
            .encode_body(frame, dst)
            .inspect_err(|_| dst.truncate(start))
    }

    /// Decodes one message. A routed frame's body shares `message`'s buffer.
    pub fn decode(&self, message: &Bytes) -> Result<SessionFrame, ProtoError> {
        self.check(message.len(), self.max_message_len())?;
        let Some(tag) = message.first_chunk::<4>().map(|t| u32::from_le_bytes(*t)) else {
            return Err(ProtoError::Malformed {
                reason: format!("a session message of {} bytes has no tag", message.len()),
            });
        };
        let rest = &message[4..];
        Ok(match tag {
            6 => SessionFrame::Open(get(rest)?),
            7 => SessionFrame::Welcome(get(rest)?),
            8 => SessionFrame::Spawn(get(rest)?),
            9 => SessionFrame::Spawned(get(rest)?),
            10 => SessionFrame::SpawnFailed(get(rest)?),
            11 => {
                let Some(channel) = rest.first_chunk::<4>().map(|c| u32::from_le_bytes(*c)) else {
                    return Err(ProtoError::Malformed {
                        reason: "a routed frame without its channel".into(),
                    });
                };
                SessionFrame::Routed {
                    channel,
                    body: message.slice(ROUTED_HEADER_LEN..),
                }
            }
            12 => SessionFrame::Output(wire::with_frame_body(message, || get(rest))?),
            13 => SessionFrame::Kill(get(rest)?),
            14 => SessionFrame::Exited(get(rest)?),
            15 => SessionFrame::Closing(get(rest)?),
            16 => SessionFrame::PassphraseHello(get(rest)?),
            17 => SessionFrame::PassphraseChallenge(get(rest)?),
            18 => SessionFrame::PassphraseProof(get(rest)?),
            19 => SessionFrame::PassphraseConfirm(get(rest)?),
            20 => SessionFrame::Status(get(rest)?),
            21 => SessionFrame::ResumeToken(get(rest)?),
            22 => SessionFrame::Resume(get(rest)?),
            23 => SessionFrame::Resumed(get(rest)?),
            24 => SessionFrame::Ack(get(rest)?),
            tag => return Err(ProtoError::NotASessionFrame { tag }),
        })
    }

    fn check(&self, len: usize, max: usize) -> Result<(), ProtoError> {
        if len > max {
            return Err(ProtoError::FrameTooLarge {
                len: len as u64,
                max,
            });
        }
        Ok(())
    }
}

fn put<T: Serialize>(out: &mut BytesMut, value: &T) -> Result<(), ProtoError> {
    let body = wire::encode_to_bytes(value).map_err(|err| ProtoError::FrameEncode {
        reason: err.to_string(),
    })?;
    out.extend_from_slice(&body);
    Ok(())
}

fn get<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtoError> {
    wire::decode_exact(bytes).map_err(wire::DecodeFailure::into_frame_error)
}

/// Serde for a `Bytes` field: a bincode byte string, shared with the message when large.
pub(crate) mod bytes_serde {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Bytes, D::Error> {
        crate::Payload::deserialize(de).map(crate::Payload::into_bytes)
    }
}
