//! Resuming sessions: the tokens the server issued, and the parked sessions they resume.
//!
//! A session that issued a token registers it here with the sender of its hand-offs. A
//! new connection whose first frame is a resume claims the token (same server instance,
//! same user) and hands its connection to the session through it. Tokens are kept by
//! their SHA-256, never as they are, and never logged. A session removes its token when
//! it ends, so a token never outlives its session (nor revives its slaves).

use axum::extract::ws::{Message, WebSocket};
use distio_proto::remote::TOKEN_LEN;
use distio_proto::remote::passphrase::Sealer;
use futures_util::stream::{SplitSink, SplitStream};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use tokio::sync::mpsc;

use super::passphrase::Gate;

/// A new connection, authenticated, handed to the session it resumes.
pub(crate) struct Handoff {
    pub(crate) stream: SplitStream<WebSocket>,
    pub(crate) sink: SplitSink<WebSocket, Message>,
    /// Its passphrase mode's opener (or plain).
    pub(crate) gate: Gate,
    /// Its passphrase mode's sealer.
    pub(crate) sealer: Option<Box<Sealer>>,
    /// How many counted frames of the session's the master has received.
    pub(crate) received: u64,
    pub(crate) peer: SocketAddr,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("peer", &self.peer)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// The key a token is kept under: its SHA-256.
pub(crate) type TokenKey = [u8; 32];

struct Entry {
    user: Option<String>,
    handoffs: mpsc::Sender<Handoff>,
}

/// The tokens of a server's resumable sessions.
#[derive(Default)]
pub(crate) struct Resumes {
    entries: Mutex<HashMap<TokenKey, Entry>>,
}

impl std::fmt::Debug for Resumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumes")
            .field("sessions", &self.lock().len())
            .finish()
    }
}

/// Why a resume was refused, as a sentence for the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No session has the token (it never existed, or its session ended).
    Unknown,
    /// The token's session belongs to another user.
    OtherUser,
}

impl Refusal {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Unknown => {
                "the resume token is unknown or expired: its session has ended (its slaves are \
                 gone); open a new session"
            }
            Refusal::OtherUser => "the resume token belongs to another user's session",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown_token",
            Refusal::OtherUser => "other_user",
        }
    }
}

impl Resumes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new random token for the session of `user`, whose hand-offs go to `handoffs`;
    /// `None` if the system has no randomness to give.
    pub(crate) fn issue(
        &self,
        user: Option<String>,
        handoffs: mpsc::Sender<Handoff>,
    ) -> Option<([u8; TOKEN_LEN], TokenKey)> {
        let mut token = [0; TOKEN_LEN];
        SystemRandom::new().fill(&mut token).ok()?;
        let key = key_of(&token);
        self.lock().insert(key, Entry { user, handoffs });
        Some((token, key))
    }

    /// The hand-off sender of the session of `token`, if `user` may resume it.
    pub(crate) fn claim(
        &self,
        token: &[u8; TOKEN_LEN],
        user: Option<&str>,
    ) -> Result<mpsc::Sender<Handoff>, Refusal> {
        let entries = self.lock();
        let entry = entries.get(&key_of(token)).ok_or(Refusal::Unknown)?;
        if entry.user.as_deref() != user {
            return Err(Refusal::OtherUser);
        }
        Ok(entry.handoffs.clone())
    }

    /// A new token for the session of `old`, whose token resumes nothing any more (each
    /// resume hands out a fresh one, so a token seen once cannot be used again); `None`
    /// if `old` is unknown or the system has no randomness (then `old` stays valid).
    pub(crate) fn rotate(&self, old: &TokenKey) -> Option<([u8; TOKEN_LEN], TokenKey)> {
        let mut token = [0; TOKEN_LEN];
        SystemRandom::new().fill(&mut token).ok()?;
        let key = key_of(&token);
        let mut entries = self.lock();
        let entry = entries.remove(old)?;
        entries.insert(key, entry);
        Some((token, key))
    }

    /// The session of `key` has ended: its token resumes nothing any more.
    pub(crate) fn remove(&self, key: &TokenKey) {
        self.lock().remove(key);
    }
}

fn key_of(token: &[u8; TOKEN_LEN]) -> TokenKey {
    let mut key = [0; 32];
    key.copy_from_slice(digest(&SHA256, token).as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_claimed_only_by_its_user_and_only_until_removed() {
        let resumes = Resumes::default();
        let (tx, _rx) = mpsc::channel(1);
        let (token, key) = resumes.issue(Some("ops".into()), tx).unwrap();
        assert!(resumes.claim(&token, Some("ops")).is_ok());
        assert_eq!(
            resumes.claim(&token, Some("eve")).unwrap_err(),
            Refusal::OtherUser
        );
        assert_eq!(resumes.claim(&token, None).unwrap_err(), Refusal::OtherUser);
        assert_eq!(
            resumes.claim(&[0; 32], Some("ops")).unwrap_err(),
            Refusal::Unknown
        );
        resumes.remove(&key);
        assert_eq!(
            resumes.claim(&token, Some("ops")).unwrap_err(),
            Refusal::Unknown
        );
    }

    #[test]
    fn a_rotated_token_replaces_the_old_one_for_the_same_session() {
        let resumes = Resumes::default();
        let (tx, _rx) = mpsc::channel(1);
        let (old, key) = resumes.issue(Some("ops".into()), tx).unwrap();
        let (new, new_key) = resumes.rotate(&key).unwrap();
        assert_ne!(old, new);
        assert_eq!(
            resumes.claim(&old, Some("ops")).unwrap_err(),
            Refusal::Unknown
        );
        assert!(resumes.claim(&new, Some("ops")).is_ok());
        assert!(resumes.rotate(&key).is_none(), "the old key is gone");
        resumes.remove(&new_key);
        assert_eq!(
            resumes.claim(&new, Some("ops")).unwrap_err(),
            Refusal::Unknown
        );
    }
}
