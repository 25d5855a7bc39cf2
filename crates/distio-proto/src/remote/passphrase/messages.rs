//! The four handshake frames of the passphrase mode (session tags 16 to 19).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The length of each side's nonce.
pub const NONCE_LEN: usize = 32;
/// The length of a proof or confirmation MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;

/// Tag 16, master → server, the session's first frame in passphrase mode: the master's
/// fresh nonce.
///
/// ```
/// use distio_proto::remote::passphrase::PassphraseHello;
/// let hello = PassphraseHello { nonce: [7; 32] };
/// assert_eq!(hello.nonce.len(), 32);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassphraseHello {
    /// 32 random bytes, new for every session.
    pub nonce: [u8; NONCE_LEN],
}

/// Tag 17, server → master: how to derive the key, and the server's fresh nonce.
///
/// ```
/// use bytes::Bytes;
/// use distio_proto::remote::passphrase::PassphraseChallenge;
/// let challenge = PassphraseChallenge {
///     salt: Bytes::from_static(&[1; 16]),
///     iterations: 600_000,
///     nonce: [9; 32],
/// };
/// assert_eq!(challenge.iterations, 600_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassphraseChallenge {
    /// The server's PBKDF2 salt (16 to 64 bytes).
    #[serde(with = "crate::remote::message::bytes_serde")]
    pub salt: Bytes,
    /// The server's PBKDF2 iteration count (600 000 to 10 000 000).
    pub iterations: u32,
    /// 32 random bytes, new for every session.
    pub nonce: [u8; NONCE_LEN],
}

/// Tag 18, master → server: proof that the master knows the key,
/// HMAC-SHA256(K, "distio client" ‖ hello ‖ challenge).
///
/// ```
/// use distio_proto::remote::passphrase::PassphraseProof;
/// let proof = PassphraseProof { mac: [0; 32] };
/// assert_eq!(proof.mac.len(), 32);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassphraseProof {
    /// The MAC.
    pub mac: [u8; MAC_LEN],
}

/// Tag 19, server → master: proof that the server knows the key too,
/// HMAC-SHA256(K, "distio server" ‖ hello ‖ challenge ‖ proof). Every later message of
/// the session, both ways, is a sealed record.
///
/// ```
/// use distio_proto::remote::passphrase::PassphraseConfirm;
/// let confirm = PassphraseConfirm { mac: [0; 32] };
/// assert_eq!(confirm.mac.len(), 32);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassphraseConfirm {
    /// The MAC.
    pub mac: [u8; MAC_LEN],
}
