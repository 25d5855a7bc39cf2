//! The passphrase handshake, both sides, without I/O.
//!
//! ```text
//! master → server  hello     { client nonce }
//! server → master  challenge { salt, iterations, server nonce }
//! master → server  proof     { HMAC(K, "distio client" ‖ hello ‖ challenge) }
//! server → master  confirm   { HMAC(K, "distio server" ‖ hello ‖ challenge ‖ proof) }
//! ```
//!
//! `hello`, `challenge` and `proof` in the MACs are the exact messages as sent (tag
//! included). Then each direction gets its own AES-256-GCM key from HKDF-SHA256 (salt: the
//! client nonce then the server nonce; input: K; info: the direction's label).

use std::sync::Arc;

use bytes::Bytes;
use ring::rand::SecureRandom as _;
use ring::{hkdf, hmac};

use super::key::{PassphraseKey, check_params};
use super::messages::{
    MAC_LEN, NONCE_LEN, PassphraseChallenge, PassphraseConfirm, PassphraseHello, PassphraseProof,
};
use super::record::{Opener, RecordKeys, Sealer};
use crate::ProtoError;
use crate::remote::frames::{CloseReason, Closing};
use crate::remote::message::{SessionCodec, SessionFrame};
use crate::remote::violation::SessionViolation;

/// The label before the transcript in the master's proof.
pub(crate) const CLIENT_LABEL: &[u8] = b"distio client";
/// The label before the transcript in the server's confirmation.
pub(crate) const SERVER_LABEL: &[u8] = b"distio server";
/// HKDF info of the master → server record key.
pub(crate) const TO_SERVER_INFO: &[u8] = b"distio record master to server";
/// HKDF info of the server → master record key.
pub(crate) const TO_MASTER_INFO: &[u8] = b"distio record server to master";

fn random_nonce() -> Result<[u8; NONCE_LEN], ProtoError> {
    let mut nonce = [0; NONCE_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| ProtoError::Random)?;
    Ok(nonce)
}

/// HMAC-SHA256(K, label ‖ parts…).
pub(crate) fn mac(key: &PassphraseKey, label: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.secret());
    let mut context = hmac::Context::with_key(&key);
    context.update(label);
    for part in parts {
        context.update(part);
    }
    let tag = context.sign();
    let mut out = [0; MAC_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Checks `mac` against HMAC-SHA256(K, label ‖ parts…) in constant time.
fn verify(key: &PassphraseKey, label: &[u8], parts: &[&[u8]], mac: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.secret());
    let mut message =
        Vec::with_capacity(label.len() + parts.iter().map(|p| p.len()).sum::<usize>());
    message.extend_from_slice(label);
    for part in parts {
        message.extend_from_slice(part);
    }
    hmac::verify(&key, &message, mac).is_ok()
}

/// HKDF-SHA256 output of `N` bytes.
struct Len<const N: usize>;

impl<const N: usize> hkdf::KeyType for Len<N> {
    fn len(&self) -> usize {
        N
    }
}

/// HKDF-SHA256(salt, ikm) expanded with `info` to `N` bytes.
pub(crate) fn hkdf_sha256<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let mut out = [0; N];
    // `N` is at most 255 × 32 for every caller, so expanding cannot fail.
    if let Ok(okm) = prk.expand(&[info], Len::<N>) {
        let _ = okm.fill(&mut out);
    }
    out
}

/// The two record keys of a session: (master → server, server → master).
pub(crate) fn record_keys(
    key: &PassphraseKey,
    client_nonce: &[u8; NONCE_LEN],
    server_nonce: &[u8; NONCE_LEN],
) -> ([u8; 32], [u8; 32]) {
    let mut salt = [0; 2 * NONCE_LEN];
    salt[..NONCE_LEN].copy_from_slice(client_nonce);
    salt[NONCE_LEN..].copy_from_slice(server_nonce);
    (
        hkdf_sha256(&salt, key.secret(), TO_SERVER_INFO),
        hkdf_sha256(&salt, key.secret(), TO_MASTER_INFO),
    )
}

/// The salt and iterations a server announced, for the master to derive its key with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyParams {
    /// The salt.
    pub salt: Bytes,
    /// The iteration count, already checked to be within bounds.
    pub iterations: u32,
}

enum ClientState {
    SentHello,
    Challenged {
        challenge: Bytes,
        params: KeyParams,
        server_nonce: [u8; NONCE_LEN],
    },
    Proved {
        key: PassphraseKey,
        challenge: Bytes,
        proof: Bytes,
        server_nonce: [u8; NONCE_LEN],
    },
    Finished,
}

/// The master's side of the passphrase handshake: [`start`](Self::start) gives the hello
/// to send, [`challenge`](Self::challenge) reads the server's answer and says how to
/// derive the key, [`prove`](Self::prove) gives the proof to send, and
/// [`confirm`](Self::confirm) checks the server's confirmation and gives the record keys.
/// Any `Err` ends the session.
///
/// ```
/// use std::sync::Arc;
/// use distio_proto::remote::SessionCodec;
/// use distio_proto::remote::passphrase::*;
///
/// let codec = SessionCodec::new();
/// let server_key = Arc::new(PassphraseKey::derive("s3cret", &[3; 16], 600_000)?);
/// let mut server = ServerHandshake::new(codec, server_key);
/// let passphrase = Passphrase::new("s3cret");
///
/// let (mut client, hello) = ClientHandshake::start(codec)?;
/// let ServerStep::Reply(challenge) = server.receive(&hello)? else { panic!() };
/// let params = client.challenge(&challenge)?;
/// let key = passphrase.key_for(&params.salt, params.iterations)?;
/// let proof = client.prove(&key)?;
/// let ServerStep::Done { reply: confirm, keys: mut server_keys } = server.receive(&proof)? else {
///     panic!()
/// };
/// let mut client_keys = client.confirm(&confirm)?;
///
/// let record = client_keys.sealer.seal(bytes::Bytes::from_static(b"open"))?;
/// assert_eq!(&server_keys.opener.open(record)?[..], b"open");
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
pub struct ClientHandshake {
    codec: SessionCodec,
    nonce: [u8; NONCE_LEN],
    hello: Bytes,
    state: ClientState,
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandshake").finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// A handshake with a fresh random nonce, and its hello message.
    pub fn start(codec: SessionCodec) -> Result<(Self, Bytes), ProtoError> {
        Self::with_nonce(codec, random_nonce()?)
    }

    pub(crate) fn with_nonce(
        codec: SessionCodec,
        nonce: [u8; NONCE_LEN],
    ) -> Result<(Self, Bytes), ProtoError> {
        let hello = codec.encode(&SessionFrame::PassphraseHello(PassphraseHello { nonce }))?;
        let handshake = ClientHandshake {
            codec,
            nonce,
            hello: hello.clone(),
            state: ClientState::SentHello,
        };
        Ok((handshake, hello))
    }

    /// Reads the server's answer to the hello: the salt and iterations to derive the key
    /// with (checked against the bounds), or why the server refused.
    pub fn challenge(&mut self, message: &Bytes) -> Result<KeyParams, ProtoError> {
        if !matches!(self.state, ClientState::SentHello) {
            return Err(self.out_of_order("challenge"));
        }
        self.state = ClientState::Finished;
        let challenge = match self.codec.decode(message)? {
            SessionFrame::PassphraseChallenge(challenge) => challenge,
            SessionFrame::Closing(closing) => return Err(refused(closing)),
            other => {
                return Err(SessionViolation::HandshakeFirst {
                    expected: "passphrase-challenge",
                    found: other.kind(),
                }
                .into());
            }
        };
        check_params(challenge.salt.len(), challenge.iterations)?;
        let params = KeyParams {
            salt: challenge.salt.clone(),
            iterations: challenge.iterations,
        };
        self.state = ClientState::Challenged {
            challenge: message.clone(),
            params: params.clone(),
            server_nonce: challenge.nonce,
        };
        Ok(params)
    }

    /// The proof to send, with `key` derived from the passphrase with the
    /// [`KeyParams`] the challenge gave.
    pub fn prove(&mut self, key: &PassphraseKey) -> Result<Bytes, ProtoError> {
        let ClientState::Challenged {
            challenge,
            params,
            server_nonce,
        } = std::mem::replace(&mut self.state, ClientState::Finished)
        else {
            return Err(self.out_of_order("proof"));
        };
        if key.salt() != &params.salt || key.iterations() != params.iterations {
            return Err(ProtoError::PassphraseKeyMismatch);
        }
        let mac = mac(key, CLIENT_LABEL, &[&self.hello, &challenge]);
        let proof = self
            .codec
            .encode(&SessionFrame::PassphraseProof(PassphraseProof { mac }))?;
        self.state = ClientState::Proved {
            key: key.clone(),
            challenge,
            proof: proof.clone(),
            server_nonce,
        };
        Ok(proof)
    }

    /// Checks the server's confirmation (it knows the key too) and gives this side's
    /// record keys.
    pub fn confirm(&mut self, message: &Bytes) -> Result<RecordKeys, ProtoError> {
        let ClientState::Proved {
            key,
            challenge,
            proof,
            server_nonce,
        } = std::mem::replace(&mut self.state, ClientState::Finished)
        else {
            return Err(self.out_of_order("confirm"));
        };
        let confirm = match self.codec.decode(message)? {
            SessionFrame::PassphraseConfirm(confirm) => confirm,
            SessionFrame::Closing(closing) => return Err(refused(closing)),
            other => {
                return Err(SessionViolation::HandshakeFirst {
                    expected: "passphrase-confirm",
                    found: other.kind(),
                }
                .into());
            }
        };
        if !verify(
            &key,
            SERVER_LABEL,
            &[&self.hello, &challenge, &proof],
            &confirm.mac,
        ) {
            return Err(ProtoError::ServerNotAuthenticated);
        }
        let (to_server, to_master) = record_keys(&key, &self.nonce, &server_nonce);
        Ok(RecordKeys {
            sealer: Sealer::new(&to_server),
            opener: Opener::new(&to_master),
        })
    }

    fn out_of_order(&self, kind: &'static str) -> ProtoError {
        SessionViolation::RepeatedHandshake { kind }.into()
    }
}

/// What a server's closing during the handshake means to the master.
fn refused(closing: Closing) -> ProtoError {
    match closing.reason {
        CloseReason::PassphraseRefused => ProtoError::PassphraseRefused,
        CloseReason::PassphraseUnexpected => ProtoError::PassphraseNotConfigured,
        reason => ProtoError::HandshakeClosed {
            reason,
            message: closing.message,
        },
    }
}

enum ServerState {
    AwaitingHello,
    Challenged {
        transcript: Vec<u8>,
        client_nonce: [u8; NONCE_LEN],
        server_nonce: [u8; NONCE_LEN],
    },
    Finished,
}

/// What the server does after a handshake message.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerStep {
    /// Send this (the challenge) and wait for the next message.
    Reply(Bytes),
    /// Send `reply` (the confirmation) as it is; every later message both ways is a
    /// record, sealed and opened with `keys`.
    Done {
        /// The confirmation.
        reply: Bytes,
        /// The server's record keys.
        keys: Box<RecordKeys>,
    },
}

/// The server's side of the passphrase handshake, holding the key derived at start. An
/// `Err` ends the session: send [`ServerHandshake::refusal`] for it first. See
/// [`ClientHandshake`] for a whole handshake.
///
/// ```
/// use std::sync::Arc;
/// use distio_proto::ProtoError;
/// use distio_proto::remote::{CloseReason, SessionCodec, SessionFrame, Open};
/// use distio_proto::remote::passphrase::*;
///
/// let codec = SessionCodec::new();
/// let key = Arc::new(PassphraseKey::derive("s3cret", &[3; 16], 600_000)?);
/// let mut server = ServerHandshake::new(codec, key);
/// // A master without the passphrase opens directly: refused, with a clear closing.
/// let open = codec.encode(&SessionFrame::Open(Open::new("m")))?;
/// let err = server.receive(&open).unwrap_err();
/// assert!(matches!(err, ProtoError::PassphraseRequired));
/// let SessionFrame::Closing(closing) = codec.decode(&ServerHandshake::refusal(codec, &err))? else {
///     panic!()
/// };
/// assert_eq!(closing.reason, CloseReason::PassphraseRequired);
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
pub struct ServerHandshake {
    codec: SessionCodec,
    key: Arc<PassphraseKey>,
    state: ServerState,
    nonce: Option<[u8; NONCE_LEN]>,
}

impl std::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandshake").finish_non_exhaustive()
    }
}

impl ServerHandshake {
    /// A handshake waiting for the master's hello.
    pub fn new(codec: SessionCodec, key: Arc<PassphraseKey>) -> Self {
        ServerHandshake {
            codec,
            key,
            state: ServerState::AwaitingHello,
            nonce: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_nonce(
        codec: SessionCodec,
        key: Arc<PassphraseKey>,
        nonce: [u8; NONCE_LEN],
    ) -> Self {
        ServerHandshake {
            nonce: Some(nonce),
            ..Self::new(codec, key)
        }
    }

    /// What a message from the master means: the challenge to send, or (after a correct
    /// proof) the confirmation and the record keys. A wrong proof is
    /// [`ProtoError::PassphraseRefused`]; a plain open is
    /// [`ProtoError::PassphraseRequired`].
    pub fn receive(&mut self, message: &Bytes) -> Result<ServerStep, ProtoError> {
        let state = std::mem::replace(&mut self.state, ServerState::Finished);
        let frame = self.codec.decode(message)?;
        match (state, frame) {
            (ServerState::AwaitingHello, SessionFrame::PassphraseHello(hello)) => {
                let nonce = match self.nonce.take() {
                    Some(nonce) => nonce,
                    None => random_nonce()?,
                };
                let challenge =
                    self.codec
                        .encode(&SessionFrame::PassphraseChallenge(PassphraseChallenge {
                            salt: self.key.salt().clone(),
                            iterations: self.key.iterations(),
                            nonce,
                        }))?;
                let mut transcript = Vec::with_capacity(message.len() + challenge.len());
                transcript.extend_from_slice(message);
                transcript.extend_from_slice(&challenge);
                self.state = ServerState::Challenged {
                    transcript,
                    client_nonce: hello.nonce,
                    server_nonce: nonce,
                };
                Ok(ServerStep::Reply(challenge))
            }
            (ServerState::AwaitingHello, SessionFrame::Open(_)) => {
                Err(ProtoError::PassphraseRequired)
            }
            (
                ServerState::Challenged {
                    transcript,
                    client_nonce,
                    server_nonce,
                },
                SessionFrame::PassphraseProof(proof),
            ) => {
                if !verify(&self.key, CLIENT_LABEL, &[&transcript], &proof.mac) {
                    return Err(ProtoError::PassphraseRefused);
                }
                let mac = mac(&self.key, SERVER_LABEL, &[&transcript, message]);
                let reply = self
                    .codec
                    .encode(&SessionFrame::PassphraseConfirm(PassphraseConfirm { mac }))?;
                let (to_server, to_master) = record_keys(&self.key, &client_nonce, &server_nonce);
                Ok(ServerStep::Done {
                    reply,
                    keys: Box::new(RecordKeys {
                        sealer: Sealer::new(&to_master),
                        opener: Opener::new(&to_server),
                    }),
                })
            }
            (_, SessionFrame::Closing(closing)) => Err(ProtoError::HandshakeClosed {
                reason: closing.reason,
                message: closing.message,
            }),
            (ServerState::AwaitingHello, frame) => Err(SessionViolation::HandshakeFirst {
                expected: "passphrase-hello",
                found: frame.kind(),
            }
            .into()),
            (_, frame) => Err(SessionViolation::HandshakeFirst {
                expected: "passphrase-proof",
                found: frame.kind(),
            }
            .into()),
        }
    }

    /// The closing to send (unsealed) before ending a session whose handshake failed
    /// with `err`: "passphrase required" for a plain open, "passphrase refused" for a
    /// wrong proof, "passphrase unexpected" for a hello to a server without a passphrase
    /// ([`ProtoError::PassphraseNotConfigured`] from
    /// [`ServerSession::receive`](crate::remote::ServerSession::receive)), a protocol
    /// violation otherwise.
    pub fn refusal(codec: SessionCodec, err: &ProtoError) -> Bytes {
        let (reason, message) = match err {
            ProtoError::PassphraseRequired => (
                CloseReason::PassphraseRequired,
                "this server requires the passphrase; give it to the master for this host"
                    .to_owned(),
            ),
            ProtoError::PassphraseRefused => (
                CloseReason::PassphraseRefused,
                "the passphrase is wrong".to_owned(),
            ),
            ProtoError::PassphraseNotConfigured => (
                CloseReason::PassphraseUnexpected,
                "this server has no passphrase; connect without one".to_owned(),
            ),
            other => (
                CloseReason::ProtocolViolation,
                format!("the server ended the session: {other}"),
            ),
        };
        codec
            .encode(&SessionFrame::Closing(Closing { reason, message }))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 5869 test case 1 (HKDF-SHA256).
    #[test]
    fn hkdf_matches_rfc_5869() {
        let okm: [u8; 42] = hkdf_sha256(
            &unhex("000102030405060708090a0b0c"),
            &[0x0b; 22],
            &unhex("f0f1f2f3f4f5f6f7f8f9"),
        );
        assert_eq!(
            hex(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    fn key() -> Arc<PassphraseKey> {
        Arc::new(PassphraseKey::from_parts(&[0x5A; 16], 600_000, [0x42; 32]))
    }

    /// Runs a handshake with fixed nonces; returns every message and both sides' keys.
    fn fixed_handshake(
        client_key: &PassphraseKey,
    ) -> (Vec<Bytes>, Result<(RecordKeys, RecordKeys), ProtoError>) {
        let codec = SessionCodec::new();
        let mut server = ServerHandshake::with_nonce(codec, key(), [0x22; 32]);
        let (mut client, hello) = ClientHandshake::with_nonce(codec, [0x11; 32]).unwrap();
        let ServerStep::Reply(challenge) = server.receive(&hello).unwrap() else {
            panic!()
        };
        let params = client.challenge(&challenge).unwrap();
        assert_eq!(params.salt.as_ref(), &[0x5A; 16]);
        let proof = client.prove(client_key).unwrap();
        let mut messages = vec![hello, challenge, proof.clone()];
        let result = server.receive(&proof).and_then(|step| {
            let ServerStep::Done { reply, keys } = step else {
                panic!()
            };
            messages.push(reply.clone());
            Ok((client.confirm(&reply)?, *keys))
        });
        (messages, result)
    }

    /// The exact bytes of a handshake with fixed inputs, and its first record each way
    /// (also in docs/protocol.md, and recomputed there with Python's hmac, hashlib and
    /// cryptography packages).
    #[test]
    fn handshake_vectors() {
        let (messages, keys) = fixed_handshake(&key());
        let (mut client, mut server) = keys.unwrap();
        let hexes: Vec<String> = messages.iter().map(|m| hex(m)).collect();
        assert_eq!(hexes[0], format!("10000000{}", "11".repeat(32)));
        assert_eq!(
            hexes[1],
            format!(
                "110000001000000000000000{}c0270900{}",
                "5a".repeat(16),
                "22".repeat(32)
            )
        );
        let proof = hex(&mac(&key(), CLIENT_LABEL, &[&messages[0], &messages[1]]));
        assert_eq!(hexes[2], format!("12000000{proof}"));
        assert_eq!(proof, PROOF);
        let confirm = hex(&mac(
            &key(),
            SERVER_LABEL,
            &[&messages[0], &messages[1], &messages[2]],
        ));
        assert_eq!(hexes[3], format!("13000000{confirm}"));
        assert_eq!(confirm, CONFIRM);
        let (to_server, to_master) = record_keys(&key(), &[0x11; 32], &[0x22; 32]);
        assert_eq!(hex(&to_server), TO_SERVER_KEY);
        assert_eq!(hex(&to_master), TO_MASTER_KEY);
        let record = client.sealer.seal(Bytes::from_static(b"distio")).unwrap();
        assert_eq!(hex(&record), FIRST_RECORD_TO_SERVER);
        assert_eq!(&server.opener.open(record).unwrap()[..], b"distio");
        let second = client.sealer.seal(Bytes::from_static(b"distio")).unwrap();
        assert_eq!(hex(&second), SECOND_RECORD_TO_SERVER);
        assert_eq!(&server.opener.open(second).unwrap()[..], b"distio");
        let back = server.sealer.seal(Bytes::from_static(b"distio")).unwrap();
        assert_ne!(
            hex(&back),
            FIRST_RECORD_TO_SERVER,
            "each direction has its own key"
        );
        assert_eq!(&client.opener.open(back).unwrap()[..], b"distio");
    }

    const PROOF: &str = "34ebf06845b4e3857c1261b477f26cdc816538a38637517ca35bfd5600081d17";
    const CONFIRM: &str = "dfe09d848931ac081eeb54bc4aa3cfccdcad277a7a3e7cb83668eea671019662";
    const TO_SERVER_KEY: &str = "356618a9524a0f65437fc818c615417633f0a193eff239d55e4f9423a96945ee";
    const TO_MASTER_KEY: &str = "f6f1aa6b418629cb20712a7a98399286763c6bc1f8806138d16fc256fb2ce9b5";
    const FIRST_RECORD_TO_SERVER: &str = "02b9975ffda653cdf8285a9ac38c1aecfce6fafe69b3";
    const SECOND_RECORD_TO_SERVER: &str = "1b6b7fb416ab8b202fad66699ff567639dffabd40c87";

    #[test]
    fn a_wrong_passphrase_fails_on_both_sides() {
        // The server refuses the proof of a wrong key.
        let wrong = PassphraseKey::from_parts(&[0x5A; 16], 600_000, [0x43; 32]);
        let (_, result) = fixed_handshake(&wrong);
        assert!(matches!(result, Err(ProtoError::PassphraseRefused)));
        // The master refuses a confirmation from a server without the key.
        let codec = SessionCodec::new();
        let (mut client, hello) = ClientHandshake::start(codec).unwrap();
        let mut impostor = ServerHandshake::new(codec, key());
        let ServerStep::Reply(challenge) = impostor.receive(&hello).unwrap() else {
            panic!()
        };
        client.challenge(&challenge).unwrap();
        client.prove(&key()).unwrap();
        let forged = codec
            .encode(&SessionFrame::PassphraseConfirm(PassphraseConfirm {
                mac: [0; 32],
            }))
            .unwrap();
        assert!(matches!(
            client.confirm(&forged),
            Err(ProtoError::ServerNotAuthenticated)
        ));
    }

    #[test]
    fn a_key_for_other_parameters_is_not_used() {
        let codec = SessionCodec::new();
        let (mut client, hello) = ClientHandshake::start(codec).unwrap();
        let mut server = ServerHandshake::new(codec, key());
        let ServerStep::Reply(challenge) = server.receive(&hello).unwrap() else {
            panic!()
        };
        client.challenge(&challenge).unwrap();
        let other = PassphraseKey::from_parts(&[0x5B; 16], 600_000, [0x42; 32]);
        assert!(matches!(
            client.prove(&other),
            Err(ProtoError::PassphraseKeyMismatch)
        ));
    }

    #[test]
    fn a_replayed_proof_fails_in_a_new_session() {
        let codec = SessionCodec::new();
        // A real session, recorded.
        let (mut client, hello) = ClientHandshake::start(codec).unwrap();
        let mut server = ServerHandshake::new(codec, key());
        let ServerStep::Reply(challenge) = server.receive(&hello).unwrap() else {
            panic!()
        };
        client.challenge(&challenge).unwrap();
        let proof = client.prove(&key()).unwrap();
        assert!(matches!(
            server.receive(&proof),
            Ok(ServerStep::Done { .. })
        ));
        // Replayed to a new session: its server nonce differs, so the proof does not fit.
        let mut replayed = ServerHandshake::new(codec, key());
        assert!(matches!(replayed.receive(&hello), Ok(ServerStep::Reply(_))));
        assert!(matches!(
            replayed.receive(&proof),
            Err(ProtoError::PassphraseRefused)
        ));
    }

    #[test]
    fn the_client_refuses_hostile_parameters_and_maps_closings() {
        let codec = SessionCodec::new();
        for (iterations, salt_len) in [(1_000, 16), (u32::MAX, 16), (600_000, 4), (600_000, 65)] {
            let (mut client, _) = ClientHandshake::start(codec).unwrap();
            let challenge = codec
                .encode(&SessionFrame::PassphraseChallenge(PassphraseChallenge {
                    salt: Bytes::from(vec![1; salt_len]),
                    iterations,
                    nonce: [0; 32],
                }))
                .unwrap();
            assert!(
                matches!(
                    client.challenge(&challenge),
                    Err(ProtoError::PassphraseIterations { .. } | ProtoError::PassphraseSalt { .. })
                ),
                "{iterations} {salt_len}"
            );
        }
        let closing = |reason| {
            codec
                .encode(&SessionFrame::Closing(Closing {
                    reason,
                    message: "x".into(),
                }))
                .unwrap()
        };
        let (mut client, _) = ClientHandshake::start(codec).unwrap();
        assert!(matches!(
            client.challenge(&closing(CloseReason::PassphraseUnexpected)),
            Err(ProtoError::PassphraseNotConfigured)
        ));
        let (mut client, _) = ClientHandshake::start(codec).unwrap();
        assert!(matches!(
            client.challenge(&closing(CloseReason::ServerStopping)),
            Err(ProtoError::HandshakeClosed { .. })
        ));
        // Out of order.
        let (mut client, _) = ClientHandshake::start(codec).unwrap();
        assert!(client.prove(&key()).is_err());
    }

    #[test]
    fn the_server_refuses_anything_out_of_place() {
        let codec = SessionCodec::new();
        let proof = codec
            .encode(&SessionFrame::PassphraseProof(PassphraseProof {
                mac: [0; 32],
            }))
            .unwrap();
        let mut server = ServerHandshake::new(codec, key());
        assert!(matches!(
            server.receive(&proof),
            Err(ProtoError::Session(SessionViolation::HandshakeFirst { .. }))
        ));
        // Nothing is accepted after a failure.
        let (_, hello) = ClientHandshake::start(codec).unwrap();
        assert!(server.receive(&hello).is_err());
        // A second hello instead of the proof.
        let mut server = ServerHandshake::new(codec, key());
        server.receive(&hello).unwrap();
        assert!(server.receive(&hello).is_err());
    }
}
