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
         tags 6..20); the peer is not a distio session peer or speaks a newer protocol"
    )]
    NotASessionFrame {
        /// The tag that was read.
        tag: u32,
    },

    /// The other side of a remote session broke its rules; the session cannot go on.
    #[error("the remote session broke its protocol: {0}")]
    Session(#[from] crate::remote::SessionViolation),

    /// The server requires the passphrase handshake, and the master opened without it.
    #[error(
        "this server requires the passphrase; give the master the passphrase for this host \
         (Host::with_passphrase or SpawnOptions::passphrase)"
    )]
    PassphraseRequired,

    /// The passphrase proof was wrong: the master's passphrase is not the server's.
    #[error("the passphrase was refused; check that master and server use the same passphrase")]
    PassphraseRefused,

    /// The master began the passphrase handshake with a server that has no passphrase.
    #[error(
        "the server has no passphrase configured; connect without one, or set `passphrase` \
         (or `passphrase_hash`) in the server's configuration"
    )]
    PassphraseNotConfigured,

    /// The server's confirmation did not prove it knows the passphrase.
    #[error(
        "the server did not prove that it knows the passphrase; it may not be the server you \
         meant to reach, so nothing was sent to it"
    )]
    ServerNotAuthenticated,

    /// The server announced an iteration count outside the accepted range.
    #[error(
        "the server asked for {iterations} PBKDF2 iterations; only {min} to {max} are accepted, \
         so its key was not derived (a hostile or misconfigured server)"
    )]
    PassphraseIterations {
        /// The count announced.
        iterations: u32,
        /// The fewest accepted.
        min: u32,
        /// The most accepted.
        max: u32,
    },

    /// A PBKDF2 salt of a length outside the accepted range.
    #[error("a passphrase salt of {len} bytes is outside the accepted 16 to 64 bytes")]
    PassphraseSalt {
        /// Its length.
        len: usize,
    },

    /// A passphrase hash string could not be read.
    #[error(
        "the passphrase hash cannot be used: {problem}; make one with `distio-serve hash-password`"
    )]
    PassphraseHash {
        /// What is wrong with it.
        problem: crate::remote::passphrase::HashProblem,
    },

    /// An empty passphrase.
    #[error("the passphrase is empty; use a long passphrase")]
    EmptyPassphrase,

    /// A key derived for other parameters than the server's challenge (a bug of the caller).
    #[error(
        "the key given for the passphrase proof was derived with another salt or iteration count"
    )]
    PassphraseKeyMismatch,

    /// The other side closed the session during the passphrase handshake.
    #[error("the session was closed during the passphrase handshake ({reason:?}): {message}")]
    HandshakeClosed {
        /// Why, as a value.
        reason: crate::remote::CloseReason,
        /// Why, as the other side said it.
        message: String,
    },

    /// A sealed record did not open: it was altered, replayed, reordered, or one before it
    /// was dropped. The session cannot go on.
    #[error(
        "sealed record {record} of the session did not open (altered, replayed, reordered or \
         a record lost before it); the session was ended"
    )]
    RecordRefused {
        /// The number the record was expected to have.
        record: u64,
    },

    /// A direction of the session used every record number.
    #[error("the session sealed 2^64 - 1 records and cannot seal more; open a new session")]
    RecordsExhausted,

    /// The system's random number generator failed.
    #[error("the system random number generator failed; no nonce or salt could be made")]
    Random,

    /// Reading or writing the underlying connection failed.
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
}
