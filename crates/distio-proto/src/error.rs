//! The one error type of this crate.

/// Everything that can go wrong while encoding or decoding distio frames and payloads.
///
/// Each variant says what happened and what to do about it. None of them is produced by a
/// panic: malformed input from the other side of a connection always ends up here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// A frame is larger than the configured limit; it was rejected before any buffer was
    /// allocated for it.
    #[error(
        "a frame of {len} bytes exceeds the limit of {max} bytes; send smaller payloads or raise \
         the limit (FrameCodec::with_max_frame_len) on both ends"
    )]
    FrameTooLarge {
        /// Size of the frame body, in bytes.
        len: u64,
        /// The limit in force.
        max: usize,
    },

    /// The frame's leading variant tag names no frame this version knows.
    #[error(
        "received a frame with unknown tag {tag} (this side knows tags 0..{known}); the peer \
         speaks a newer or different protocol"
    )]
    UnknownFrame {
        /// The tag that was read.
        tag: u32,
        /// How many frame kinds this version knows.
        known: u32,
    },

    /// A nested enum (a control message or error kind) carried an index this version does
    /// not know.
    #[error(
        "received a frame with an unknown variant ({detail}); the peer speaks a newer or different protocol"
    )]
    UnknownVariant {
        /// What bincode reported.
        detail: String,
    },

    /// The frame body could not be decoded at all: the peer sent bytes that are not a
    /// distio frame.
    #[error("received a malformed frame ({reason}); the peer is not speaking the distio protocol")]
    Malformed {
        /// What the decoder reported.
        reason: String,
    },

    /// The frame decoded but did not use all the bytes its length prefix announced.
    #[error(
        "received a frame whose body has {extra} unused bytes after {used} decoded ones; the \
         peer encodes frames differently"
    )]
    TrailingBytes {
        /// Bytes that were decoded.
        used: usize,
        /// Bytes left over.
        extra: usize,
    },

    /// The handshake did not start with the distio magic bytes.
    #[error(
        "the peer's handshake has magic {found:?} instead of {expected:?}; it is not a distio peer"
    )]
    BadMagic {
        /// The magic bytes received.
        found: [u8; 4],
        /// The magic bytes expected.
        expected: [u8; 4],
    },

    /// The peer speaks a protocol version this side does not.
    #[error(
        "the peer speaks distio protocol version {found}, this side speaks version {supported}; \
         build both sides from the same distio release"
    )]
    UnsupportedVersion {
        /// The version the peer announced.
        found: u16,
        /// The version this side speaks.
        supported: u16,
    },

    /// A value could not be turned into payload bytes.
    #[error("could not encode a value of type {type_name}: {reason}")]
    PayloadEncode {
        /// The Rust type that was being encoded.
        type_name: &'static str,
        /// What the encoder reported.
        reason: String,
    },

    /// Payload bytes could not be decoded into the requested type.
    #[error(
        "could not decode the payload as {expected}: {reason}; the sender and receiver disagree \
         on the data's type"
    )]
    PayloadDecode {
        /// The Rust type the receiver asked for.
        expected: &'static str,
        /// What the decoder reported.
        reason: String,
    },

    /// A frame could not be encoded (this points at a bug: every frame type is encodable).
    #[error("could not encode a frame: {reason}")]
    FrameEncode {
        /// What the encoder reported.
        reason: String,
    },

    /// A remote-session message carried the tag of no session frame (a slave frame's tag,
    /// or one from a newer version).
    #[error(
        "received a session message with tag {tag}, which is no session frame (this side knows \
         tags 6..16); the peer is not a distio session peer or speaks a newer protocol"
    )]
    NotASessionFrame {
        /// The tag that was read.
        tag: u32,
    },

    /// The other side of a remote session broke its rules; the session cannot go on.
    #[error("the remote session broke its protocol: {0}")]
    Session(#[from] crate::remote::SessionViolation),

    /// Reading or writing the underlying connection failed.
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
}
