//! The passphrase mode of a session: the handshake before the session opens, then every
//! message opened (and, through the outbox, sealed) as a record. One place logs a refused
//! passphrase attempt: [`passphrase_refused`].

use bytes::Bytes;
use distio_proto::remote::SessionCodec;
use distio_proto::remote::passphrase::{Opener, RecordKeys, ServerHandshake, ServerStep};
use distio_proto::{ProtoError, Throttle};
use std::net::SocketAddr;
use std::time::Duration;

use super::ServerState;
use super::outbox::Outbox;
use crate::admission::{Admission, Refusal};

/// Why a passphrase attempt was refused, for the log line (and the per-address penalties
/// that count them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefusedReason {
    /// The master opened without the passphrase handshake.
    Missing,
    /// The master's proof was wrong: a wrong passphrase (or a replayed handshake).
    BadProof,
    /// The handshake broke its rules (malformed, out of order).
    Malformed,
}

impl RefusedReason {
    fn as_str(self) -> &'static str {
        match self {
            RefusedReason::Missing => "missing passphrase",
            RefusedReason::BadProof => "bad passphrase proof",
            RefusedReason::Malformed => "malformed passphrase handshake",
        }
    }
}

/// A master at `peer` failed the passphrase handshake: the one place such an attempt is
/// logged (one structured line: peer, reason; nothing of what it sent).
/// A flood of refusals is logged as warnings at most once per interval (with the count
/// suppressed); the others still go out at debug level.
pub(crate) fn passphrase_refused(peer: SocketAddr, reason: RefusedReason) {
    match REFUSALS.allow() {
        Some(suppressed) => tracing::warn!(
            %peer,
            reason = reason.as_str(),
            suppressed,
            "authentication refused"
        ),
        None => tracing::debug!(%peer, reason = reason.as_str(), "authentication refused"),
    }
}

static REFUSALS: Throttle = Throttle::new(Duration::from_secs(1));

/// Where a session is in the passphrase mode.
#[derive(Debug)]
pub(crate) enum Gate {
    /// No passphrase: messages are the session's as they are.
    Plain,
    /// The handshake is under way (with the connection's admission ticket, settled by it).
    Handshake(Box<ServerHandshake>, Option<Admission>),
    /// Done: every message is a record.
    Sealed(Box<Opener>),
}

/// Why the session must end.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The handshake failed; its closing (unsealed) is queued already.
    Handshake(String),
    /// A record did not open: the session ends as for a protocol violation (its closing
    /// is sealed).
    Record(String),
}

impl Gate {
    pub(crate) fn new(state: &ServerState, ticket: Option<Admission>) -> Self {
        match state.passphrase() {
            Some(key) => Gate::Handshake(
                Box::new(ServerHandshake::new(state.codec(), key.clone())),
                ticket,
            ),
            None => Gate::Plain,
        }
    }

    /// A message from the master: the session message it carries, or `None` if the
    /// handshake took it (its answer is queued).
    pub(crate) fn receive(
        &mut self,
        message: Bytes,
        outbox: &Outbox,
        codec: SessionCodec,
        peer: SocketAddr,
    ) -> Result<Option<Bytes>, Refused> {
        match self {
            Gate::Plain => Ok(Some(message)),
            Gate::Sealed(opener) => opener
                .open(message)
                .map(Some)
                .map_err(|err| Refused::Record(err.to_string())),
            Gate::Handshake(handshake, ticket) => match handshake.receive(&message) {
                Ok(ServerStep::Reply(challenge)) => {
                    outbox.control(challenge);
                    Ok(None)
                }
                Ok(ServerStep::Done { reply, keys }) => {
                    // The confirmation goes out as it is; everything after it is sealed.
                    let RecordKeys { sealer, opener } = *keys;
                    if let Some(ticket) = ticket.take() {
                        ticket.authenticated();
                    }
                    outbox.control(reply);
                    outbox.seal_from_now(sealer);
                    *self = Gate::Sealed(Box::new(opener));
                    tracing::debug!(%peer, "passphrase handshake done");
                    Ok(None)
                }
                Ok(_) => Err(Refused::Handshake("an unknown handshake step".into())),
                Err(err) => {
                    let reason = match err {
                        ProtoError::PassphraseRequired => RefusedReason::Missing,
                        ProtoError::PassphraseRefused => RefusedReason::BadProof,
                        _ => RefusedReason::Malformed,
                    };
                    // A master that closes during the handshake is not refused.
                    if !matches!(err, ProtoError::HandshakeClosed { .. }) {
                        match ticket.take() {
                            // The admission ticket logs the refusal and counts it towards
                            // the address's penalty.
                            Some(ticket) => ticket.refused(
                                match reason {
                                    RefusedReason::Missing => Refusal::Missing,
                                    _ => Refusal::BadCredentials,
                                },
                                None,
                            ),
                            None => passphrase_refused(peer, reason),
                        }
                        outbox.control(ServerHandshake::refusal(codec, &err));
                    }
                    Err(Refused::Handshake(err.to_string()))
                }
            },
        }
    }
}
