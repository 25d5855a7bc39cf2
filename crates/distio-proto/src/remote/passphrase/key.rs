//! The key both sides derive from the passphrase (PBKDF2-HMAC-SHA256), the client's
//! passphrase with its cache of derived keys, and the stored form of a key: the one place
//! the `$pbkdf2-sha256$…` hash string is read and written.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Standard base64: written without padding, read with or without it.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
use bytes::Bytes;
use ring::pbkdf2;
use ring::rand::SecureRandom as _;

use crate::ProtoError;

/// The fewest PBKDF2 iterations either side accepts: OWASP's 2023 figure for
/// PBKDF2-HMAC-SHA256. A server announcing fewer is refused by the client.
pub const MIN_ITERATIONS: u32 = 600_000;
/// The most PBKDF2 iterations a client agrees to compute, so a hostile server cannot make
/// it burn minutes of CPU.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// The iterations a server uses for a key it derives itself.
pub const DEFAULT_ITERATIONS: u32 = MIN_ITERATIONS;
/// The length of a salt a server generates.
pub const SALT_LEN: usize = 16;
/// The shortest salt accepted (from a hash string or a server's challenge).
pub const MIN_SALT_LEN: usize = 16;
/// The longest salt accepted.
pub const MAX_SALT_LEN: usize = 64;
/// The length of the derived key.
pub const KEY_LEN: usize = 32;
/// How a passphrase hash string starts.
pub const HASH_PREFIX: &str = "$pbkdf2-sha256$";

const ALGORITHM: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;

/// What is wrong with a passphrase hash string, as a value (never the string itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashProblem {
    /// It is not `$pbkdf2-sha256$i=ITERATIONS$SALT$KEY`.
    Format,
    /// The iteration count is not a number from [`MIN_ITERATIONS`] to [`MAX_ITERATIONS`].
    Iterations,
    /// The salt or the key is not unpadded standard base64.
    Base64,
    /// The salt is not [`MIN_SALT_LEN`] to [`MAX_SALT_LEN`] bytes long.
    SaltLength,
    /// The key is not [`KEY_LEN`] bytes long.
    KeyLength,
}

impl fmt::Display for HashProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashProblem::Format => "it is not of the form $pbkdf2-sha256$i=ITERATIONS$SALT$KEY",
            HashProblem::Iterations => "its iteration count is not from 600000 to 10000000",
            HashProblem::Base64 => "its salt or key is not unpadded standard base64",
            HashProblem::SaltLength => "its salt is not 16 to 64 bytes long",
            HashProblem::KeyLength => "its key is not 32 bytes long",
        })
    }
}

/// A key derived from a passphrase: PBKDF2-HMAC-SHA256 of the passphrase with `salt` and
/// `iterations`, [`KEY_LEN`] bytes. The server holds one (derived at start, or read from a
/// hash string); the client derives the same from the salt and iterations the server
/// announces. Whoever holds it can authenticate as if they knew the passphrase.
///
/// Its `Debug` shows the iterations and the salt's length, never the key.
///
/// ```
/// use distio_proto::remote::passphrase::PassphraseKey;
///
/// let key = PassphraseKey::derive("correct horse", &[7; 16], 600_000)?;
/// let stored = key.to_hash_string();
/// assert!(stored.starts_with("$pbkdf2-sha256$i=600000$"));
/// let back = PassphraseKey::parse_hash(&stored)?;
/// assert_eq!(back, key);
/// assert!(back.matches("correct horse"));
/// assert!(!format!("{back:?}").contains(&stored[30..]));
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PassphraseKey {
    salt: Bytes,
    iterations: u32,
    key: [u8; KEY_LEN],
}

impl PassphraseKey {
    /// Derives the key of `passphrase` with `salt` and `iterations` (each within the
    /// bounds above; an empty passphrase is refused). Takes about half a second at the
    /// default iterations: call it off the async runtime's threads.
    pub fn derive(
        passphrase: impl AsRef<[u8]>,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, ProtoError> {
        let passphrase = passphrase.as_ref();
        if passphrase.is_empty() {
            return Err(ProtoError::EmptyPassphrase);
        }
        check_params(salt.len(), iterations)?;
        let mut key = [0; KEY_LEN];
        pbkdf2_sha256(passphrase, salt, iterations, &mut key);
        Ok(PassphraseKey {
            salt: Bytes::copy_from_slice(salt),
            iterations,
            key,
        })
    }

    /// Derives the key of `passphrase` with a new random salt of [`SALT_LEN`] bytes and
    /// [`DEFAULT_ITERATIONS`]: what a server does at start with a plain passphrase.
    pub fn generate(passphrase: impl AsRef<[u8]>) -> Result<Self, ProtoError> {
        let mut salt = [0; SALT_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| ProtoError::Random)?;
        Self::derive(passphrase, &salt, DEFAULT_ITERATIONS)
    }

    /// Reads a hash string `$pbkdf2-sha256$i=ITERATIONS$SALT$KEY` (salt and key in
    /// standard base64 without padding), as [`to_hash_string`](Self::to_hash_string)
    /// writes it. The error names the problem, never the string.
    pub fn parse_hash(text: &str) -> Result<Self, ProtoError> {
        let bad = |problem| ProtoError::PassphraseHash { problem };
        let rest = text
            .trim()
            .strip_prefix(HASH_PREFIX)
            .ok_or(bad(HashProblem::Format))?;
        let mut parts = rest.split('$');
        let (Some(params), Some(salt), Some(key), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(HashProblem::Format));
        };
        let iterations = params.strip_prefix("i=").ok_or(bad(HashProblem::Format))?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
            .ok_or(bad(HashProblem::Iterations))?;
        let salt = B64.decode(salt).map_err(|_| bad(HashProblem::Base64))?;
        if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
            return Err(bad(HashProblem::SaltLength));
        }
        let key = B64.decode(key).map_err(|_| bad(HashProblem::Base64))?;
        let key: [u8; KEY_LEN] = key
            .as_slice()
            .try_into()
            .map_err(|_| bad(HashProblem::KeyLength))?;
        Ok(PassphraseKey {
            salt: Bytes::from(salt),
            iterations,
            key,
        })
    }

    /// The key as a hash string, for a configuration file. It is as secret as the
    /// passphrase: whoever has it can log in.
    pub fn to_hash_string(&self) -> String {
        format!(
            "{HASH_PREFIX}i={}${}${}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.key)
        )
    }

    /// True if `passphrase` derives this key (compared in constant time).
    pub fn matches(&self, passphrase: impl AsRef<[u8]>) -> bool {
        let Some(iterations) = NonZeroU32::new(self.iterations) else {
            return false;
        };
        pbkdf2::verify(
            ALGORITHM,
            iterations,
            &self.salt,
            passphrase.as_ref(),
            &self.key,
        )
        .is_ok()
    }

    /// The salt.
    pub fn salt(&self) -> &Bytes {
        &self.salt
    }

    /// The iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The key's bytes (for the handshake's MACs and the record keys).
    pub(crate) fn secret(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// A key from its parts, unchecked (tests and vectors).
    #[cfg(test)]
    pub(crate) fn from_parts(salt: &[u8], iterations: u32, key: [u8; KEY_LEN]) -> Self {
        PassphraseKey {
            salt: Bytes::copy_from_slice(salt),
            iterations,
            key,
        }
    }
}

impl fmt::Debug for PassphraseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassphraseKey")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .field("key", &"***")
            .finish()
    }
}

impl Drop for PassphraseKey {
    fn drop(&mut self) {
        // Best effort: the key does not linger in freed memory.
        self.key.fill(0);
        std::hint::black_box(&self.key);
    }
}

/// Checks a salt length and an iteration count against the bounds.
pub(crate) fn check_params(salt_len: usize, iterations: u32) -> Result<(), ProtoError> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(ProtoError::PassphraseIterations {
            iterations,
            min: MIN_ITERATIONS,
            max: MAX_ITERATIONS,
        });
    }
    if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt_len) {
        return Err(ProtoError::PassphraseSalt { len: salt_len });
    }
    Ok(())
}

/// PBKDF2-HMAC-SHA256 without bounds (the vectors use 1 iteration). `iterations` 0 counts
/// as 1.
pub(crate) fn pbkdf2_sha256(passphrase: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(ALGORITHM, iterations, salt, passphrase, out);
}

/// A master's passphrase for a host, and the key it derived last (by salt and
/// iterations), so reconnecting to the same server does not derive it again.
///
/// Never shown: `Debug` prints `Passphrase(***)`. Two passphrases are equal when their
/// text is.
///
/// ```
/// use distio_proto::remote::passphrase::Passphrase;
/// let passphrase = Passphrase::new("correct horse");
/// assert_eq!(format!("{passphrase:?}"), "Passphrase(***)");
/// let key = passphrase.key_for(&[1; 16], 600_000)?;
/// // The second time comes from the cache.
/// assert_eq!(passphrase.key_for(&[1; 16], 600_000)?, key);
/// // A hostile server cannot ask for a weak or absurd derivation.
/// assert!(passphrase.key_for(&[1; 16], 1_000).is_err());
/// assert!(passphrase.key_for(&[1; 16], 4_000_000_000).is_err());
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
pub struct Passphrase {
    secret: Box<[u8]>,
    cache: Mutex<Option<PassphraseKey>>,
}

impl Passphrase {
    /// A passphrase (an empty one fails at the handshake).
    pub fn new(text: impl Into<String>) -> Self {
        Passphrase {
            secret: text.into().into_bytes().into_boxed_slice(),
            cache: Mutex::new(None),
        }
    }

    /// The key for `salt` and `iterations`: from the cache, or derived (slow: call it off
    /// the async runtime's threads) and cached. Bounds are checked first.
    pub fn key_for(&self, salt: &[u8], iterations: u32) -> Result<PassphraseKey, ProtoError> {
        check_params(salt.len(), iterations)?;
        if let Some(key) = self.cached(salt, iterations) {
            return Ok(key);
        }
        let key = PassphraseKey::derive(&self.secret, salt, iterations)?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.clone());
        Ok(key)
    }

    /// The cached key for `salt` and `iterations`, if it is the one derived last.
    pub fn cached(&self, salt: &[u8], iterations: u32) -> Option<PassphraseKey> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .filter(|k| k.iterations == iterations && k.salt.as_ref() == salt)
            .cloned()
    }
}

impl Clone for Passphrase {
    fn clone(&self) -> Self {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Passphrase {
            secret: self.secret.clone(),
            cache: Mutex::new(cache),
        }
    }
}

impl PartialEq for Passphrase {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
    }
}

impl Eq for Passphrase {}

impl Hash for Passphrase {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.secret.hash(state);
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        self.secret.fill(0);
        std::hint::black_box(&self.secret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// PBKDF2-HMAC-SHA256 vectors: RFC 7914 §11 (64-byte outputs) and the widely used
    /// "password"/"salt" ones (32-byte outputs), also checked with Python's hashlib.
    #[test]
    fn pbkdf2_matches_known_vectors() {
        let cases: [(&[u8], &[u8], u32, &str); 4] = [
            (
                b"passwd",
                b"salt",
                1,
                "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
                 49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
            ),
            (
                b"Password",
                b"NaCl",
                80_000,
                "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
                 a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
            ),
            (
                b"password",
                b"salt",
                1,
                "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
            ),
            (
                b"password",
                b"salt",
                4096,
                "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
            ),
        ];
        for (passphrase, salt, iterations, expected) in cases {
            let mut out = vec![0; expected.len() / 2];
            pbkdf2_sha256(passphrase, salt, iterations, &mut out);
            assert_eq!(hex(&out), expected, "{iterations}");
        }
    }

    #[test]
    fn hash_strings_round_trip_and_bad_ones_name_their_problem() {
        let key = PassphraseKey::from_parts(&[0xAB; 16], 600_000, [0x11; 32]);
        let text = key.to_hash_string();
        assert_eq!(
            text,
            "$pbkdf2-sha256$i=600000$q6urq6urq6urq6urq6urqw$ERERERERERERERERERERERERERERERERERERERERERE"
        );
        assert_eq!(PassphraseKey::parse_hash(&text).unwrap(), key);
        let problem = |text: &str| match PassphraseKey::parse_hash(text) {
            Err(ProtoError::PassphraseHash { problem }) => problem,
            other => panic!("{text}: {other:?}"),
        };
        let salt = "q6urq6urq6urq6urq6urqw";
        let k = "ERERERERERERERERERERERERERERERERERERERERERE";
        assert_eq!(problem(""), HashProblem::Format);
        assert_eq!(problem("$pbkdf2-sha512$i=600000$a$b"), HashProblem::Format);
        assert_eq!(
            problem(&format!("$pbkdf2-sha256$600000${salt}${k}")),
            HashProblem::Format
        );
        assert_eq!(
            problem(&format!("$pbkdf2-sha256$i=600000${salt}${k}$x")),
            HashProblem::Format
        );
        assert_eq!(
            problem(&format!("$pbkdf2-sha256$i=1000${salt}${k}")),
            HashProblem::Iterations
        );
        assert_eq!(
            problem(&format!("$pbkdf2-sha256$i=99999999999${salt}${k}")),
            HashProblem::Iterations
        );
        assert_eq!(
            problem(&format!("$pbkdf2-sha256$i=600000$!!!${k}")),
            HashProblem::Base64
        );
        assert_eq!(
            problem(&format!("$pbkdf2-sha256$i=600000$q6urq6ur${k}")),
            HashProblem::SaltLength
        );
        assert_eq!(
            problem(&format!("$pbkdf2-sha256$i=600000${salt}$ERERERER")),
            HashProblem::KeyLength
        );
        // The error never repeats the string.
        let err = PassphraseKey::parse_hash(&format!("$pbkdf2-sha256$i=600000${salt}$ERERERER"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("ERERERER"), "{err}");
    }

    #[test]
    fn derivation_checks_its_bounds_and_matches() {
        assert!(matches!(
            PassphraseKey::derive("", &[0; 16], MIN_ITERATIONS),
            Err(ProtoError::EmptyPassphrase)
        ));
        assert!(matches!(
            PassphraseKey::derive("x", &[0; 8], MIN_ITERATIONS),
            Err(ProtoError::PassphraseSalt { len: 8 })
        ));
        assert!(matches!(
            PassphraseKey::derive("x", &[0; 16], MIN_ITERATIONS - 1),
            Err(ProtoError::PassphraseIterations { .. })
        ));
        let key = PassphraseKey::generate("hunter2").unwrap();
        assert_eq!(key.salt().len(), SALT_LEN);
        assert_eq!(key.iterations(), DEFAULT_ITERATIONS);
        assert!(key.matches("hunter2"));
        assert!(!key.matches("hunter3"));
        assert!(!format!("{key:?}").contains(&hex(key.secret())));
    }
}
