//! The passphrase mode of a remote session, without I/O.
//!
//! The passphrase never crosses the wire and nothing captured can be replayed. Both sides
//! hold K = PBKDF2-HMAC-SHA256(passphrase, the server's salt, its iterations)
//! ([`PassphraseKey`]; the master derives it from the salt and iterations the server
//! announces, caching it in its [`Passphrase`]). Before anything else, the master and the
//! server exchange fresh nonces and prove to each other that they hold K
//! ([`ClientHandshake`], [`ServerHandshake`]); then every message of the session, both
//! ways, is an AES-256-GCM record under a per-direction key from HKDF-SHA256, numbered by
//! a counter per direction ([`Sealer`], [`Opener`]): a replayed, reordered, dropped or
//! altered record does not open, and the session ends. Inside the records the session is
//! unchanged.
//!
//! The handshake frames are session frames with tags 16 to 19; the byte-level
//! specification, with vectors, is `docs/protocol.md` §11.
//!
//! A server holds its key as a hash string ([`PassphraseKey::parse_hash`],
//! [`PassphraseKey::to_hash_string`]): `$pbkdf2-sha256$i=ITERATIONS$SALT$KEY`.

mod handshake;
mod key;
mod messages;
mod record;

pub use handshake::{ClientHandshake, KeyParams, ServerHandshake, ServerStep};
pub use key::{
    DEFAULT_ITERATIONS, HASH_PREFIX, HashProblem, KEY_LEN, MAX_ITERATIONS, MAX_SALT_LEN,
    MIN_ITERATIONS, MIN_SALT_LEN, Passphrase, PassphraseKey, SALT_LEN,
};
pub use messages::{
    MAC_LEN, NONCE_LEN, PassphraseChallenge, PassphraseConfirm, PassphraseHello, PassphraseProof,
};
pub use record::{Opener, RecordKeys, Sealer, TAG_LEN};
