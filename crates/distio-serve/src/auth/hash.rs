//! Password hashes kept in the configuration instead of passwords: PBKDF2-HMAC-SHA256
//! (from `ring`), written as a PHC-like string
//! `$pbkdf2-sha256$i=ITERATIONS$SALT$HASH` (salt and hash in standard base64 without
//! padding; padding is accepted when read).
//!
//! The lead merges this with the passphrase mode's copy of the same format in
//! `distio-proto`: one module must own it.

use std::fmt;
use std::io::BufRead;
use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

use crate::ServeError;

/// The PHC identifier of the algorithm.
const ID: &str = "pbkdf2-sha256";

/// Standard base64: written without padding, read with or without it.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest password line `hash-password` reads (bytes, newline excluded).
const MAX_PASSWORD_LEN: usize = 4096;

/// Why a password-hash string was refused. Its messages never contain the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashProblem {
    /// Not `$pbkdf2-sha256$i=N$SALT$HASH`.
    Format,
    /// The iteration count is below [`PasswordHash::MIN_ITERATIONS`] or above
    /// [`PasswordHash::MAX_ITERATIONS`].
    Iterations,
    /// The salt is not base64 of 16 to 64 bytes.
    Salt,
    /// The hash is not base64 of 32 bytes.
    Output,
}

impl fmt::Display for HashProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashProblem::Format => f.write_str(
                "it is not a password hash of the form `$pbkdf2-sha256$i=ITERATIONS$SALT$HASH`; make one with `distio-serve hash-password`",
            ),
            HashProblem::Iterations => write!(
                f,
                "its iteration count must be between {} and {}; make a new hash with `distio-serve hash-password`",
                PasswordHash::MIN_ITERATIONS,
                PasswordHash::MAX_ITERATIONS
            ),
            HashProblem::Salt => f.write_str(
                "its salt must be base64 of 16 to 64 bytes; make a new hash with `distio-serve hash-password`",
            ),
            HashProblem::Output => f.write_str(
                "its hash part must be base64 of 32 bytes; make a new hash with `distio-serve hash-password`",
            ),
        }
    }
}

/// A PBKDF2-HMAC-SHA256 password hash: iterations, salt and 32-byte output.
///
/// `Debug` shows only the iteration count; `Display` writes the whole string (it goes into
/// a configuration file, not into logs).
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
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: [u8; 32],
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// The fewest iterations accepted: OWASP's figure for PBKDF2-HMAC-SHA256 (2023).
    pub const MIN_ITERATIONS: u32 = 600_000;
    /// The most iterations accepted (about 17 times the minimum): more would make each
    /// login cost seconds of CPU.
    pub const MAX_ITERATIONS: u32 = 10_000_000;
    /// Bytes of random salt in a new hash.
    pub const SALT_LEN: usize = 16;

    /// Hashes `password` with a new random salt and `iterations` rounds (at least
    /// [`MIN_ITERATIONS`](Self::MIN_ITERATIONS)).
    ///
    /// ```
    /// use distio_serve::auth::PasswordHash;
    /// assert!(PasswordHash::derive(b"pw", 1000).is_err());
    /// ```
    pub fn derive(password: &[u8], iterations: u32) -> Result<Self, ServeError> {
        let mut salt = vec![0; Self::SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| ServeError::Random)?;
        Self::derive_with_salt(password, salt, iterations).map_err(|problem| {
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
        if !(Self::MIN_ITERATIONS..=Self::MAX_ITERATIONS).contains(&iterations) {
            return Err(HashProblem::Iterations);
        }
        let iterations = NonZeroU32::new(iterations).ok_or(HashProblem::Iterations)?;
        if !(16..=64).contains(&salt.len()) {
            return Err(HashProblem::Salt);
        }
        let mut hash = [0; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password,
            &mut hash,
        );
        Ok(Self {
            iterations,
            salt,
            hash,
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
        let mut parts = text.trim().split('$');
        let (Some(""), Some(ID), Some(iterations), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(HashProblem::Format);
        };
        let iterations = iterations
            .strip_prefix("i=")
            .filter(|n| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(HashProblem::Format)?
            .parse::<u32>()
            .map_err(|_| HashProblem::Iterations)?;
        if !(Self::MIN_ITERATIONS..=Self::MAX_ITERATIONS).contains(&iterations) {
            return Err(HashProblem::Iterations);
        }
        let iterations = NonZeroU32::new(iterations).ok_or(HashProblem::Iterations)?;
        // 64 bytes of salt are 86 base64 characters; longer is refused before decoding.
        let salt = (salt.len() <= 88)
            .then(|| B64.decode(salt).ok())
            .flatten()
            .filter(|s| (16..=64).contains(&s.len()))
            .ok_or(HashProblem::Salt)?;
        let hash = (hash.len() <= 44)
            .then(|| B64.decode(hash).ok())
            .flatten()
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or(HashProblem::Output)?;
        Ok(Self {
            iterations,
            salt,
            hash,
        })
    }

    /// Whether `password` is the one hashed, compared in constant time by
    /// `ring::pbkdf2::verify`. Costs the full iteration count (about 0.3 s of CPU at the
    /// minimum): call it off the async runtime.
    pub fn verify(&self, password: &[u8]) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            password,
            &self.hash,
        )
        .is_ok()
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
        self.iterations.get()
    }
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "${ID}$i={}${}${}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.hash)
        )
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
                HashProblem::Format,
            ),
            (
                format!("$pbkdf2-sha256$i=-1${salt}${out}"),
                HashProblem::Format,
            ),
            (
                format!("$pbkdf2-sha256$i=99999999999${salt}${out}"),
                HashProblem::Format,
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
                HashProblem::Salt,
            ),
            (
                format!("$pbkdf2-sha256$i=600000$!!${out}"),
                HashProblem::Salt,
            ),
            (
                format!("$pbkdf2-sha256$i=600000${salt}$AAAA"),
                HashProblem::Output,
            ),
            (
                format!("$pbkdf2-sha256$i=600000${salt}${out}$"),
                HashProblem::Format,
            ),
            (format!("{good}x"), HashProblem::Output),
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
