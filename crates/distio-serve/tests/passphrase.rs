//! The passphrase mode against the real server with real slaves: the right passphrase
//! works, a wrong or missing one is refused with a clear error before anything is
//! spawned, a captured handshake replayed in a new session is refused, a captured record
//! replayed inside its session ends it, and the passphrase never crosses the wire.

mod common;

use bytes::Bytes;
use common::{TestServer, Ws, process_gone, start, wait_gone, within};
use distio_master::prelude::*;
use distio_master::{Master, MasterError, Output, SpawnOptions};
use distio_proto::remote::passphrase::{ClientHandshake, Passphrase, RecordKeys};
use distio_proto::remote::{
    ClientEvent, ClientSession, CloseReason, SessionCodec, SessionFrame, Spawn,
};
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const PASSPHRASE: &str = "correct horse battery staple";

/// A server in passphrase mode. The master derives its key (PBKDF2, 600 000 iterations)
/// within the open deadline: seconds in an unoptimised test build on a loaded machine, so
/// the deadline is generous here.
async fn passphrase_server() -> TestServer {
    start(|b| {
        b.passphrase(PASSPHRASE)
            .open_timeout(Duration::from_secs(120))
    })
    .await
}

fn url(server: &TestServer) -> String {
    format!("ws://{}", server.addr)
}

fn remote(server: &TestServer) -> SpawnOptions {
    SpawnOptions::remote(url(server), "slave.sh").output(Output::Null)
}

async fn stop(server: TestServer) {
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_with_the_right_passphrase_spawns_and_execs() {
    let server = passphrase_server().await;
    let master = Master::new();
    let slave = within(master.spawn(remote(&server).passphrase(PASSPHRASE)))
        .await
        .expect("spawn with the passphrase");
    within(slave.ready()).await.unwrap();
    let square: u64 = within(slave.exec("square", &12u64))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(square, 144);
    // A second slave rides the same sealed session.
    let other = within(master.spawn(remote(&server).passphrase(PASSPHRASE)))
        .await
        .unwrap();
    let echoed: String = within(other.exec("echo", &"sealed".to_owned()))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(echoed, "sealed");
    within(master.close_all()).await.unwrap();
    stop(server).await;
}

/// A spawn of `marker.sh`, which creates the file it is given: proof that a spawn ran.
fn marker_spawn(server: &TestServer, marker: &std::path::Path) -> SpawnOptions {
    SpawnOptions::remote(url(server), "marker.sh")
        .args([marker.display().to_string()])
        .output(Output::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_passphrase_is_refused_clearly_and_nothing_is_spawned() {
    let server = passphrase_server().await;
    let marker = server.root.join("wrong-passphrase-ran");
    let master = Master::new();
    let err = within(master.spawn(marker_spawn(&server, &marker).passphrase("wrong horse")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MasterError::HostRefusedPassphrase { host } if host.contains(&server.addr.to_string())),
        "{err:?}"
    );
    assert!(err.to_string().contains("refused the passphrase"), "{err}");
    assert!(!err.to_string().contains("horse"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "a spawn ran without the passphrase");
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_without_the_passphrase_is_told_the_server_requires_one() {
    let server = passphrase_server().await;
    let marker = server.root.join("no-passphrase-ran");
    let master = Master::new();
    let err = within(master.spawn(marker_spawn(&server, &marker)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MasterError::HostNeedsPassphrase { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("requires a passphrase"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists());
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passphrase_for_a_server_without_one_is_refused_clearly() {
    let server = start(|b| b).await;
    let master = Master::new();
    let err = within(master.spawn(remote(&server).passphrase(PASSPHRASE)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MasterError::HostHasNoPassphrase { .. }),
        "{err:?}"
    );
    stop(server).await;
}

/// A raw client: the passphrase handshake with the proto machines over a real WebSocket,
/// every message it sends recorded as sent.
struct RawClient {
    ws: Ws,
    keys: RecordKeys,
    session: ClientSession,
    sent: Vec<Bytes>,
}

impl RawClient {
    async fn send_raw(ws: &mut Ws, sent: &mut Vec<Bytes>, message: Bytes) {
        sent.push(message.clone());
        within(ws.send(Message::Binary(message))).await.unwrap();
    }

    async fn next(ws: &mut Ws) -> Option<Bytes> {
        loop {
            match within(ws.next()).await {
                Some(Ok(Message::Binary(bytes))) => return Some(bytes),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    async fn connect(server: &TestServer) -> RawClient {
        let codec = SessionCodec::new();
        let mut ws = common::Client::connect_raw(server.addr).await;
        let mut sent = Vec::new();
        let (mut handshake, hello) = ClientHandshake::start(codec).unwrap();
        Self::send_raw(&mut ws, &mut sent, hello).await;
        let challenge = Self::next(&mut ws).await.expect("a challenge");
        let params = handshake.challenge(&challenge).unwrap();
        let key = tokio::task::spawn_blocking(move || {
            Passphrase::new(PASSPHRASE).key_for(&params.salt, params.iterations)
        })
        .await
        .unwrap()
        .unwrap();
        let proof = handshake.prove(&key).unwrap();
        Self::send_raw(&mut ws, &mut sent, proof).await;
        let confirm = Self::next(&mut ws).await.expect("a confirmation");
        let keys = handshake.confirm(&confirm).unwrap();
        let mut client = RawClient {
            ws,
            keys,
            session: ClientSession::new(codec),
            sent,
        };
        let open = client.session.open("raw").unwrap();
        client.send(open).await;
        match client.event().await {
            Some(ClientEvent::Welcomed(_)) => {}
            other => panic!("expected a welcome, got {other:?}"),
        }
        client
    }

    async fn send(&mut self, message: Bytes) {
        let record = self.keys.sealer.seal(message).unwrap();
        Self::send_raw(&mut self.ws, &mut self.sent, record).await;
    }

    /// The next event, or `None` once the server has closed the connection.
    /// The next event, past the server's load reports (every record is opened: each
    /// counts in the record sequence).
    async fn event(&mut self) -> Option<ClientEvent> {
        loop {
            let record = Self::next(&mut self.ws).await?;
            let message = self.keys.opener.open(record).expect("a record that opens");
            match self.session.receive(&message).expect("a valid message") {
                ClientEvent::Status(_) => continue,
                event => return Some(event),
            }
        }
    }
}

/// Replays `messages` verbatim on a new connection; returns every message the server
/// sent back, until it closed the connection.
async fn replay(server: &TestServer, messages: &[Bytes]) -> Vec<Bytes> {
    let mut ws = common::Client::connect_raw(server.addr).await;
    for message in messages {
        if ws.send(Message::Binary(message.clone())).await.is_err() {
            break;
        }
    }
    let mut answers = Vec::new();
    while let Some(answer) = RawClient::next(&mut ws).await {
        answers.push(answer);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_replay_of_a_captured_handshake_is_refused() {
    let server = passphrase_server().await;
    let marker = server.root.join("replayed-spawn-ran");
    // A real session that spawns marker.sh, every message it sends captured.
    let mut client = RawClient::connect(&server).await;
    let mut spawn = Spawn::new(0, 1, "marker.sh");
    spawn.args = vec![marker.display().to_string()];
    let (channel, message) = client.session.spawn(spawn).unwrap();
    client.send(message).await;
    match client.event().await {
        Some(ClientEvent::Spawned(spawned)) => assert_eq!(spawned.channel, channel),
        other => panic!("expected spawned, got {other:?}"),
    }
    within(async {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let captured = client.sent.clone();
    assert_eq!(captured.len(), 4, "hello, proof, open, spawn");
    let bye = client.session.close(CloseReason::Done, "bye").unwrap();
    client.send(bye).await;
    drop(client);
    std::fs::remove_file(&marker).unwrap();

    // Replayed verbatim on a new connection: the proof does not fit the new server
    // nonce, so the server refuses before the open or the spawn is read.
    let answers = replay(&server, &captured).await;
    let codec = SessionCodec::new();
    let frames: Vec<SessionFrame> = answers
        .iter()
        .map(|a| codec.decode(a).expect("unsealed answers"))
        .collect();
    assert!(
        matches!(frames.first(), Some(SessionFrame::PassphraseChallenge(_))),
        "{frames:?}"
    );
    assert!(
        matches!(frames.last(), Some(SessionFrame::Closing(c)) if c.reason == CloseReason::PassphraseRefused),
        "{frames:?}"
    );
    assert_eq!(
        frames.len(),
        2,
        "nothing but the challenge and the refusal: {frames:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!marker.exists(), "the replayed spawn ran");
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_record_replayed_in_its_session_ends_it() {
    let server = passphrase_server().await;
    let mut client = RawClient::connect(&server).await;
    let (channel, message) = client.session.spawn(Spawn::new(0, 1, "sleep.sh")).unwrap();
    client.send(message).await;
    let pid = match client.event().await {
        Some(ClientEvent::Spawned(spawned)) => {
            assert_eq!(spawned.channel, channel);
            spawned.pid
        }
        other => panic!("expected spawned, got {other:?}"),
    };
    // The spawn's record again, as an attacker on the path would replay it.
    let record = client.sent.last().unwrap().clone();
    within(client.ws.send(Message::Binary(record)))
        .await
        .unwrap();
    // The server ends the session (with a sealed closing, or by dropping the
    // connection) and its slave with it.
    let mut ended = false;
    while let Some(event) = client.event().await {
        if let ClientEvent::Closing(closing) = event {
            assert_eq!(closing.reason, CloseReason::ProtocolViolation);
            assert!(
                closing.message.contains("did not open"),
                "{}",
                closing.message
            );
            ended = true;
        }
    }
    assert!(ended, "the session ended without a closing");
    wait_gone(pid).await;
    assert!(process_gone(pid));
    stop(server).await;
}

/// A TCP proxy that records every byte the master sends.
async fn recording_proxy(to: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                let (mut in_read, mut in_write) = inbound.split();
                let (mut out_read, mut out_write) = outbound.split();
                let up = async {
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match in_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        if out_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = out_write.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
                    let _ = in_write.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_passphrase_never_crosses_the_wire() {
    let server = passphrase_server().await;
    let (proxy, seen) = recording_proxy(server.addr).await;
    let master = Master::new();
    let options = SpawnOptions::remote(format!("ws://{proxy}"), "slave.sh")
        .output(Output::Null)
        .passphrase(PASSPHRASE);
    let slave = within(master.spawn(options))
        .await
        .expect("spawn through the proxy");
    let echoed: String = within(slave.exec("echo", &"a secret payload".to_owned()))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(echoed, "a secret payload");
    within(master.close_all()).await.unwrap();
    let seen = unmasked(&seen.lock().unwrap());
    assert!(seen.len() > 100, "the proxy saw the session");
    let contains = |needle: &[u8]| seen.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"GET /session"), "the upgrade request is readable");
    assert!(
        !contains(PASSPHRASE.as_bytes()),
        "the passphrase crossed the wire"
    );
    assert!(!contains(b"horse"));
    // The session is sealed: neither the script nor the payload is readable on the wire.
    assert!(
        !contains(b"slave.sh"),
        "the spawn crossed the wire in the clear"
    );
    assert!(
        !contains(b"a secret payload"),
        "the request crossed the wire in the clear"
    );
    stop(server).await;
}

/// What a WebSocket client sent, readable: the HTTP upgrade request, then every frame's
/// payload unmasked (clients mask their frames with a random key per frame).
fn unmasked(wire: &[u8]) -> Vec<u8> {
    let Some(end) = wire.windows(4).position(|w| w == b"\r\n\r\n") else {
        return wire.to_vec();
    };
    let mut out = wire[..end + 4].to_vec();
    let mut at = end + 4;
    while at + 2 <= wire.len() {
        let masked = wire[at + 1] & 0x80 != 0;
        let (len, mut head) = match wire[at + 1] & 0x7f {
            126 if at + 4 <= wire.len() => (
                u64::from(u16::from_be_bytes([wire[at + 2], wire[at + 3]])),
                4,
            ),
            127 if at + 10 <= wire.len() => (
                u64::from_be_bytes(wire[at + 2..at + 10].try_into().unwrap()),
                10,
            ),
            126 | 127 => break,
            n => (u64::from(n), 2),
        };
        let mut key = [0u8; 4];
        if masked {
            let Some(k) = wire.get(at + head..at + head + 4) else {
                break;
            };
            key.copy_from_slice(k);
            head += 4;
        }
        let start = at + head;
        let stop = (start + len as usize).min(wire.len());
        out.extend(
            wire[start..stop]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4]),
        );
        at = stop;
    }
    out
}

#[test]
fn unmasking_reads_a_masked_frame() {
    let mut wire = b"GET /session HTTP/1.1\r\n\r\n".to_vec();
    let key = [1u8, 2, 3, 4];
    let payload = b"slave.sh";
    wire.extend([0x82, 0x80 | payload.len() as u8]);
    wire.extend(key);
    wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    let seen = unmasked(&wire);
    assert!(seen.windows(8).any(|w| w == b"slave.sh"));
}
