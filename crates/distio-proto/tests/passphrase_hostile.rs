//! Handshake messages and sealed records from a hostile or broken peer never panic the
//! passphrase machines, and nothing but the exact expected message gets through: any
//! truncation, mutation or forged length of a real handshake message or record is
//! refused.

#![allow(dead_code)]

mod common;

use std::sync::{Arc, LazyLock};

use bytes::{BufMut, Bytes, BytesMut};
use common::passphrase_frame;
use distio_proto::ProtoError;
use distio_proto::remote::passphrase::{
    ClientHandshake, Passphrase, PassphraseKey, RecordKeys, ServerHandshake, ServerStep,
};
use distio_proto::remote::{SessionCodec, SessionFrame};
use proptest::collection::vec;
use proptest::prelude::*;

const PASSPHRASE: &str = "correct horse battery staple";

/// Derived once: 600 000 iterations take a moment.
static KEY: LazyLock<Arc<PassphraseKey>> =
    LazyLock::new(|| Arc::new(PassphraseKey::derive(PASSPHRASE, &[9; 16], 600_000).unwrap()));

fn codec() -> SessionCodec {
    SessionCodec::new()
}

/// A real handshake: its four messages and both sides' keys.
fn handshake() -> ([Bytes; 4], RecordKeys, RecordKeys) {
    let mut server = ServerHandshake::new(codec(), Arc::clone(&KEY));
    let (mut client, hello) = ClientHandshake::start(codec()).unwrap();
    let ServerStep::Reply(challenge) = server.receive(&hello).unwrap() else {
        panic!("a challenge")
    };
    client.challenge(&challenge).unwrap();
    let proof = client.prove(&KEY).unwrap();
    let ServerStep::Done { reply, keys } = server.receive(&proof).unwrap() else {
        panic!("done")
    };
    let client_keys = client.confirm(&reply).unwrap();
    ([hello, challenge, proof, reply], client_keys, *keys)
}

static REAL: LazyLock<[Bytes; 4]> = LazyLock::new(|| handshake().0);

/// Feeds `message` to a server handshake at each of its steps and to a client handshake
/// at each of its steps; returns how many accepted it. Never panics.
fn feed_everywhere(message: &Bytes) -> usize {
    let mut accepted = 0;
    // Server, fresh.
    let mut server = ServerHandshake::new(codec(), Arc::clone(&KEY));
    accepted += usize::from(server.receive(message).is_ok());
    // Server, after a hello: waiting for the proof (of another session).
    let mut server = ServerHandshake::new(codec(), Arc::clone(&KEY));
    server.receive(&REAL[0]).unwrap();
    accepted += usize::from(server.receive(message).is_ok());
    // Client, waiting for the challenge.
    let (mut client, _) = ClientHandshake::start(codec()).unwrap();
    accepted += usize::from(client.challenge(message).is_ok());
    // Client, waiting for the confirmation.
    let mut server = ServerHandshake::new(codec(), Arc::clone(&KEY));
    let (mut client, hello) = ClientHandshake::start(codec()).unwrap();
    let ServerStep::Reply(challenge) = server.receive(&hello).unwrap() else {
        panic!()
    };
    client.challenge(&challenge).unwrap();
    client.prove(&KEY).unwrap();
    accepted += usize::from(client.confirm(message).is_ok());
    accepted
}

/// Whether a session between a real client and server completes when the server's
/// challenge is replaced by `challenge` on the way.
fn completes_with_challenge(challenge: &Bytes) -> bool {
    let mut server = ServerHandshake::new(codec(), Arc::clone(&KEY));
    let (mut client, hello) = ClientHandshake::start(codec()).unwrap();
    server.receive(&hello).unwrap();
    let Ok(params) = client.challenge(challenge) else {
        return false;
    };
    if params.salt != KEY.salt() || params.iterations != KEY.iterations() {
        // Other parameters derive another key: the proof cannot fit.
        return false;
    }
    let proof = client.prove(&KEY).unwrap();
    server.receive(&proof).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_pass(bytes in vec(any::<u8>(), 0..200)) {
        let message = Bytes::from(bytes);
        // A random message can at most be a well-formed hello (to a fresh server).
        prop_assert!(feed_everywhere(&message) <= 1);
    }

    #[test]
    fn well_formed_forged_frames_never_complete_a_handshake(f in passphrase_frame()) {
        let message = codec().encode(&f).unwrap();
        let is_hello = matches!(f, SessionFrame::PassphraseHello(_));
        // A hello is taken by a fresh server; anything else forged (a proof, a
        // confirmation, a challenge with any parameters) fails or is refused later.
        let mut server = ServerHandshake::new(codec(), Arc::clone(&KEY));
        server.receive(&REAL[0]).unwrap();
        prop_assert!(server.receive(&message).is_err());
        let mut server = ServerHandshake::new(codec(), Arc::clone(&KEY));
        prop_assert_eq!(server.receive(&message).is_ok(), is_hello);
    }

    #[test]
    fn truncated_and_mutated_real_messages_are_refused(
        which in 0usize..4,
        edits in vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let real = &REAL[which];
        // Truncated.
        let truncated = real.slice(..cut.index(real.len()));
        prop_assert!(feed_everywhere(&truncated) <= usize::from(false));
        // Mutated (each edit changes a byte; at least one byte differs).
        let mut mutated = real.to_vec();
        for (at, flip) in &edits {
            let i = at.index(mutated.len());
            mutated[i] ^= flip;
        }
        let mutated = Bytes::from(mutated);
        if mutated != *real {
            let accepted = feed_everywhere(&mutated);
            // Only a mutated hello (another nonce) or challenge (other parameters or nonce)
            // can still be read; the rest is refused.
            prop_assert!(accepted <= usize::from(which <= 1), "{} accepted {}", which, accepted);
            if which == 1 {
                prop_assert!(!completes_with_challenge(&mutated));
            }
        }
    }

    #[test]
    fn forged_salt_lengths_never_panic_or_allocate(len in any::<u64>(), tail in vec(any::<u8>(), 0..64)) {
        let mut m = BytesMut::new();
        m.put_u32_le(17);
        m.put_u64_le(len);
        m.put_slice(&tail);
        prop_assert_eq!(feed_everywhere(&m.freeze()), 0);
    }

    #[test]
    fn altered_records_never_open(
        message in vec(any::<u8>(), 0..300),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (_, mut client, mut server) = handshake();
        let record = client.sealer.seal(Bytes::from(message)).unwrap();
        let mut altered = record.to_vec();
        let i = at.index(altered.len());
        altered[i] ^= flip;
        prop_assert!(server.opener.open(Bytes::from(altered)).is_err());
        // And the session cannot go on: even the genuine record is refused now.
        prop_assert!(server.opener.open(record).is_err());
    }
}

#[test]
fn a_whole_session_replayed_to_a_new_server_is_refused() {
    let ([hello, _challenge, proof, _], _, _) = handshake();
    let mut replayed = ServerHandshake::new(codec(), Arc::clone(&KEY));
    assert!(matches!(replayed.receive(&hello), Ok(ServerStep::Reply(_))));
    assert!(matches!(
        replayed.receive(&proof),
        Err(ProtoError::PassphraseRefused)
    ));
}

#[test]
fn records_of_one_session_do_not_open_in_another() {
    let (_, mut a_client, _) = handshake();
    let (_, _, mut b_server) = handshake();
    let record = a_client.sealer.seal(Bytes::from_static(b"spawn")).unwrap();
    assert!(b_server.opener.open(record).is_err());
}

#[test]
fn a_record_sent_back_to_its_sender_does_not_open() {
    let (_, mut client, _) = handshake();
    let record = client
        .sealer
        .seal(Bytes::from_static(b"reflected"))
        .unwrap();
    assert!(client.opener.open(record).is_err());
}

#[test]
fn the_passphrase_never_appears_in_the_handshake() {
    let passphrase = Passphrase::new(PASSPHRASE);
    let key = passphrase.key_for(&[9; 16], 600_000).unwrap();
    let ([hello, challenge, proof, confirm], _, _) = handshake();
    for message in [hello, challenge, proof, confirm] {
        let text = String::from_utf8_lossy(&message);
        assert!(!text.contains(PASSPHRASE));
        let hash = key.to_hash_string();
        let encoded_key = hash.rsplit('$').next().unwrap();
        assert!(!text.contains(encoded_key));
    }
}
