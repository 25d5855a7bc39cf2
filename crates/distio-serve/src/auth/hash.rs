//! Password hashes kept in the configuration instead of passwords: PBKDF2-HMAC-SHA256
//! (from `ring`), written `$pbkdf2-sha256$i=ITERATIONS$SALT$HASH` (salt and hash in standard
//! base64 without padding; padding is accepted when read).
//!
//! The format, the derivation and the check are distio-proto's
//! [`PassphraseKey`](distio_proto::remote::passphrase::PassphraseKey), the key of the
//! passphrase mode: one string format for both, and `distio-serve hash-password` makes
//! either.

use std::fmt;
use std::io::BufRead;

use distio_proto::ProtoError;
pub use distio_proto::remote::passphrase::HashProblem;
use distio_proto::remote::passphrase::{self as format, PassphraseKey};

use crate::ServeError;

/// Longest password line `hash-password` reads (bytes, newline excluded).
const MAX_PASSWORD_LEN: usize = 4096;

/// A PBKDF2-HMAC-SHA256 password hash: iterations, salt and 32-byte output.
///
/// `Debug` shows only the iteration count and the salt's length; `Display` writes the
/// whole string (it goes into a configuration file, not into logs).
///
/// ```
/// use distio_serve::auth::PasswordHash;
/// let hash = PasswordHash::derive(b"hunter2", PasswordHash::MIN_ITERATIONS)?;
/// let text = hash.to_string();
/// assert!(text.starts_with("$pbkdf2-sha256$i=600000$"));
/// let back = PasswordHash::parse(&text).unwrap();
/// assert!(back.verify(b"hunter2"));
/// assert!(!back.verify(b"hunter3"));
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(PassphraseKey);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PasswordHash").field(&self.0).finish()
    }
}

/// The problem of a hash string, from the error of its parser.
fn problem(err: ProtoError) -> HashProblem {
    match err {
        ProtoError::PassphraseHash { problem } => problem,
        _ => HashProblem::Format,
    }
}

impl PasswordHash {
    /// The fewest iterations accepted: OWASP's figure for PBKDF2-HMAC-SHA256 (2023).
    pub const MIN_ITERATIONS: u32 = format::MIN_ITERATIONS;
    /// The most iterations accepted (about 17 times the minimum): more would make each
    /// login cost seconds of CPU.
    pub const MAX_ITERATIONS: u32 = format::MAX_ITERATIONS;
    /// Bytes of random salt in a new hash.
    pub const SALT_LEN: usize = format::SALT_LEN;

    /// Hashes `password` with a new random salt and `iterations` rounds (at least
    /// [`MIN_ITERATIONS`](Self::MIN_ITERATIONS)).
    ///
    /// ```
    /// use distio_serve::auth::PasswordHash;
    /// assert!(PasswordHash::derive(b"pw", 1000).is_err());
    /// ```
    pub fn derive(password: &[u8], iterations: u32) -> Result<Self, ServeError> {
        let mut salt = [0; format::SALT_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| ServeError::Random)?;
        Self::derive_with_salt(password, salt.to_vec(), iterations).map_err(|problem| {
            ServeError::HashPassword {
                reason: problem.to_string(),
            }
        })
    }

    /// Hashes `password` with the given salt (16 to 64 bytes).
    pub(crate) fn derive_with_salt(
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<Self, HashProblem> {
        PassphraseKey::derive(password, &salt, iterations)
            .map(Self)
            .map_err(|err| match err {
                ProtoError::PassphraseHash { problem } => problem,
                ProtoError::EmptyPassphrase => HashProblem::Format,
                _ => HashProblem::Iterations,
            })
    }

    /// Reads `$pbkdf2-sha256$i=ITERATIONS$SALT$HASH`.
    ///
    /// ```
    /// use distio_serve::auth::{HashProblem, PasswordHash};
    /// assert_eq!(PasswordHash::parse("hunter2"), Err(HashProblem::Format));
    /// let weak = "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    /// assert_eq!(PasswordHash::parse(weak), Err(HashProblem::Iterations));
    /// ```
    pub fn parse(text: &str) -> Result<Self, HashProblem> {
        PassphraseKey::parse_hash(text).map(Self).map_err(problem)
    }

    /// Whether `password` is the one hashed, compared in constant time by
    /// `ring::pbkdf2::verify`. Costs the full iteration count (about 0.3 s of CPU at the
    /// minimum): call it off the async runtime.
    pub fn verify(&self, password: &[u8]) -> bool {
        self.0.matches(password)
    }

    /// The iteration count.
    ///
    /// ```
    /// # use distio_serve::auth::PasswordHash;
    /// let hash = PasswordHash::derive(b"pw", 700_000)?;
    /// assert_eq!(hash.iterations(), 700_000);
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn iterations(&self) -> u32 {
        self.0.iterations()
    }
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hash_string())
    }
}

/// What `distio-serve hash-password` does: reads one line (the password) from `input`,
/// refuses an empty or overlong one, and hashes it with `iterations` rounds.
///
/// ```
/// use distio_serve::auth::{PasswordHash, hash_password_from};
/// let hash = hash_password_from(&b"s3cret\n"[..], PasswordHash::MIN_ITERATIONS)?;
/// assert!(hash.verify(b"s3cret"));
/// assert!(hash_password_from(&b"\n"[..], PasswordHash::MIN_ITERATIONS).is_err());
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
pub fn hash_password_from(
    input: impl BufRead,
    iterations: u32,
) -> Result<PasswordHash, ServeError> {
    let refuse = |reason: &str| ServeError::HashPassword {
        reason: reason.to_owned(),
    };
    let mut line = Vec::new();
    let mut limited = std::io::Read::take(input, MAX_PASSWORD_LEN as u64 + 2);
    limited
        .read_until(b'\n', &mut line)
        .map_err(|err| refuse(&format!("standard input could not be read ({err})")))?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() > MAX_PASSWORD_LEN {
        return Err(refuse(&format!(
            "the password is longer than {MAX_PASSWORD_LEN} bytes"
        )));
    }
    if line.is_empty() {
        return Err(refuse(
            "standard input gave an empty password; pipe or type a password followed by a newline",
        ));
    }
    let hash = PasswordHash::derive(&line, iterations);
    line.fill(0);
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(password: &[u8]) -> PasswordHash {
        PasswordHash::derive_with_salt(password, vec![7; 16], PasswordHash::MIN_ITERATIONS).unwrap()
    }

    #[test]
    fn round_trips_through_its_string() {
        let hash = quick(b"pa:ss");
        let text = hash.to_string();
        assert!(
            text.starts_with("$pbkdf2-sha256$i=600000$BwcHBwcHBwcHBwcHBwcHBw$"),
            "{text}"
        );
        let back = PasswordHash::parse(&text).unwrap();
        assert_eq!(back, hash);
        assert!(back.verify(b"pa:ss"));
        assert!(!back.verify(b"pa:sS"));
        assert!(!back.verify(b""));
    }

    #[test]
    fn padding_and_surrounding_space_are_accepted() {
        let text = quick(b"x").to_string();
        let parts: Vec<&str> = text.split('$').collect();
        let padded = format!(
            "  ${}${}${}==${}=\n",
            parts[1], parts[2], parts[3], parts[4]
        );
        assert_eq!(PasswordHash::parse(&padded), Ok(quick(b"x")));
    }

    #[test]
    fn malformed_strings_are_refused_for_a_reason() {
        let good = quick(b"x").to_string();
        let parts: Vec<&str> = good.split('$').collect();
        let salt = parts[3];
        let out = parts[4];
        for (text, problem) in [
            (String::new(), HashProblem::Format),
            ("$pbkdf2-sha512$i=600000$a$b".into(), HashProblem::Format),
            (
                format!("$pbkdf2-sha256$600000${salt}${out}"),
                HashProblem::Format,
            ),
            (
                format!("$pbkdf2-sha256$i=${salt}${out}"),
                HashProblem::Iterations,
            ),
            (
                format!("$pbkdf2-sha256$i=-1${salt}${out}"),
                HashProblem::Iterations,
            ),
            (
                format!("$pbkdf2-sha256$i=99999999999${salt}${out}"),
                HashProblem::Iterations,
            ),
            (
                format!("$pbkdf2-sha256$i=599999${salt}${out}"),
                HashProblem::Iterations,
            ),
            (
                format!("$pbkdf2-sha256$i=4294967295${salt}${out}"),
                HashProblem::Iterations,
            ),
            (
                format!("$pbkdf2-sha256$i=600000$AAAA${out}"),
                HashProblem::SaltLength,
            ),
            (
                format!("$pbkdf2-sha256$i=600000$!!${out}"),
                HashProblem::Base64,
            ),
            (
                format!("$pbkdf2-sha256$i=600000${salt}$AAAA"),
                HashProblem::KeyLength,
            ),
            (
                format!("$pbkdf2-sha256$i=600000${salt}${out}$"),
                HashProblem::Format,
            ),
            (format!("{good}x"), HashProblem::KeyLength),
        ] {
            assert_eq!(PasswordHash::parse(&text), Err(problem), "{text}");
        }
    }

    #[test]
    fn debug_shows_no_salt_or_hash() {
        let hash = quick(b"x");
        let text = format!("{hash:?}");
        let printed = hash.to_string();
        let out = printed.rsplit('$').next().unwrap();
        assert!(!text.contains(out) && !text.contains("BwcHBw"), "{text}");
        assert!(text.contains("600000"), "{text}");
    }

    #[test]
    fn hash_password_reads_one_line() {
        let hash = hash_password_from(&b"a b\r\nrest"[..], PasswordHash::MIN_ITERATIONS).unwrap();
        assert!(hash.verify(b"a b"));
        for input in [&b""[..], b"\n", b"\r\n"] {
            let err = hash_password_from(input, PasswordHash::MIN_ITERATIONS).unwrap_err();
            assert!(err.to_string().contains("empty"), "{err}");
        }
        let long = vec![b'x'; MAX_PASSWORD_LEN + 10];
        assert!(hash_password_from(&long[..], PasswordHash::MIN_ITERATIONS).is_err());
        let err = hash_password_from(&b"pw\n"[..], 10).unwrap_err();
        assert!(err.to_string().contains("iteration"), "{err}");
    }
}
