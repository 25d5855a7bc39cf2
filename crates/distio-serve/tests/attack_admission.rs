//! Attacks before authentication, against the real server on loopback: guessing, malformed
//! headers, spoofed and look-alike addresses, slow and half-open connections. Clients bind
//! other loopback addresses (127.0.0.2, 127.0.0.10, …) to come from somewhere else.

mod common;

use base64::Engine;
use common::{TestServer, start, within};
use distio_serve::{Access, AdmissionConfig, Allowlist, BasicAuth, Credentials};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const USER: &str = "ops";
const PASSWORD: &str = "pa:ss:w0rd";

async fn server(allow: &[&str], admission: AdmissionConfig) -> TestServer {
    let access = Access {
        allowlist: Arc::new(Allowlist::parse(allow).unwrap()),
        credentials: Some(Arc::new(
            Credentials::new(&BasicAuth::with_password(USER, PASSWORD)).unwrap(),
        )),
    };
    start(move |b| {
        b.admission(admission)
            .map_router(move |r| access.protect(r))
    })
    .await
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    within(socket.connect(to)).await.expect("connect")
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// The upgrade request of a session, with extra header lines.
fn upgrade_request(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut text = String::from(
        "GET /session HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// Sends `request` from `from` and returns the response head (status line and headers,
/// without `date`) and, unless it is an upgrade, the body up to the close.
async fn exchange(from: &str, to: SocketAddr, request: &[u8]) -> (String, Vec<u8>) {
    let mut tcp = connect_from(from, to).await;
    tcp.write_all(request).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = within(async {
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            assert!(n > 0, "closed before a response: {received:?}");
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let head: String = head
        .lines()
        .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
        .map(|line| format!("{line}\n"))
        .collect();
    let mut body = received[head_end..].to_vec();
    // The connection stays open (keep-alive): read the body by its length.
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    if !head.starts_with("HTTP/1.1 101") {
        within(async {
            while body.len() < length {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
    }
    (head, body)
}

async fn status(from: &str, to: SocketAddr, headers: &[(&str, &str)]) -> u16 {
    let (head, _) = exchange(from, to, &upgrade_request(headers)).await;
    head[9..12].parse().unwrap()
}

/// A session client with the right credentials.
async fn authenticated_client(addr: SocketAddr) -> common::Client {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/session")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", basic(USER, PASSWORD).parse().unwrap());
    let (ws, _) = within(tokio_tungstenite::connect_async(request))
        .await
        .expect("connect");
    common::Client::open_on(ws).await
}

async fn stop(server: TestServer) {
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_header_wrong_password_and_unknown_user_get_identical_answers() {
    let server = server(&[], AdmissionConfig::default()).await;
    let missing = exchange("127.0.0.1", server.addr, &upgrade_request(&[])).await;
    let wrong_password = basic(USER, "nope");
    let wrong = exchange(
        "127.0.0.1",
        server.addr,
        &upgrade_request(&[("Authorization", &wrong_password)]),
    )
    .await;
    let unknown_user = basic("root", PASSWORD);
    let unknown = exchange(
        "127.0.0.1",
        server.addr,
        &upgrade_request(&[("Authorization", &unknown_user)]),
    )
    .await;
    assert!(missing.0.starts_with("HTTP/1.1 401"), "{}", missing.0);
    assert_eq!(missing, wrong);
    assert_eq!(wrong, unknown);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_64_kib_authorization_headers_get_a_clean_401_and_the_server_goes_on() {
    // More attempts than the default penalty allows: this test is about parsing.
    let admission = AdmissionConfig {
        penalty_after_failures: 100,
        ..AdmissionConfig::default()
    };
    let server = server(&[], admission).await;
    let huge = format!("Basic {}", "QUFB".repeat(16 * 1024));
    let huge_garbage = "\u{7f}x".repeat(32 * 1024);
    for value in [
        "Basic !!!",
        "Bearer abc",
        "Basic",
        "basic Og==",
        "Basic =====",
        huge.as_str(),
        huge_garbage.as_str(),
    ] {
        let code = status("127.0.0.1", server.addr, &[("Authorization", value)]).await;
        assert!(
            code == 400 || code == 401,
            "{code} for {}",
            &value[..value.len().min(20)]
        );
    }
    let good = basic(USER, PASSWORD);
    assert_eq!(
        status("127.0.0.1", server.addr, &[("Authorization", &good)]).await,
        101
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_containing_colons_works() {
    let server = server(&[], AdmissionConfig::default()).await;
    let good = basic(USER, PASSWORD);
    assert!(PASSWORD.matches(':').count() >= 2);
    assert_eq!(
        status("127.0.0.1", server.addr, &[("Authorization", &good)]).await,
        101
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_x_forwarded_for_does_not_pass_the_allowlist() {
    let server = server(&["127.0.0.2"], AdmissionConfig::default()).await;
    let good = basic(USER, PASSWORD);
    for header in ["X-Forwarded-For", "X-Real-IP", "Forwarded"] {
        let value = if header == "Forwarded" {
            "for=127.0.0.2"
        } else {
            "127.0.0.2"
        };
        let code = status(
            "127.0.0.1",
            server.addr,
            &[(header, value), ("Authorization", &good)],
        )
        .await;
        assert_eq!(code, 403, "{header}");
    }
    assert_eq!(
        status("127.0.0.2", server.addr, &[("Authorization", &good)]).await,
        101,
        "the allowed address itself gets in"
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlist_entry_does_not_admit_an_address_that_merely_contains_it() {
    let server = server(&["127.0.0.1"], AdmissionConfig::default()).await;
    let good = basic(USER, PASSWORD);
    for lookalike in ["127.0.0.10", "127.0.0.100", "127.0.0.11"] {
        assert_eq!(
            status(lookalike, server.addr, &[("Authorization", &good)]).await,
            403,
            "{lookalike}"
        );
    }
    assert_eq!(
        status("127.0.0.1", server.addr, &[("Authorization", &good)]).await,
        101
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_at_the_deadline() {
    let admission = AdmissionConfig {
        handshake_timeout: Duration::from_secs(2),
        ..AdmissionConfig::default()
    };
    let server = server(&[], admission).await;
    let request = upgrade_request(&[("Authorization", &basic(USER, PASSWORD))]);
    let tcp = connect_from("127.0.0.1", server.addr).await;
    let (mut read, mut write) = tcp.into_split();
    let total = request.len();
    let trickle = tokio::spawn(async move {
        let mut sent = 0;
        for byte in request {
            if write.write_all(&[byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        sent
    });
    // The server closes the connection: the read ends without a response.
    let mut buf = [0u8; 256];
    let n = within(read.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0, "the server answered: {:?}", &buf[..n]);
    trickle.abort();
    let sent = trickle.await.unwrap_or(0);
    assert!(
        sent < total,
        "the whole request went through ({sent} bytes)"
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_half_open_connections_do_not_keep_a_legitimate_client_out() {
    let admission = AdmissionConfig {
        max_unauthenticated: 16,
        max_unauthenticated_per_address: 4,
        handshake_timeout: Duration::from_secs(30),
        ..AdmissionConfig::default()
    };
    let server = server(&[], admission).await;
    // Up to and past the per-address cap, from one address: each sends half a request.
    // The first four are held open; each one past the cap is closed at accept.
    let mut held = Vec::new();
    for i in 0..40 {
        let mut tcp = connect_from("127.0.0.3", server.addr).await;
        let _ = tcp.write_all(b"GET /session HTTP/1.1\r\nHost: x\r\n").await;
        if i < 4 {
            held.push(tcp);
        } else {
            let mut buf = [0u8; 16];
            let n = within(tcp.read(&mut buf)).await.unwrap_or(0);
            assert_eq!(n, 0, "connection {i} past the cap got an answer");
        }
    }
    for tcp in &mut held {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await;
        assert!(read.is_err(), "a connection within the cap was closed");
    }
    // A legitimate client still gets a session.
    let mut client = authenticated_client(server.addr).await;
    let (_, spawned) = client.ready_slave().await;
    assert!(spawned.pid > 0);
    client.close().await;
    drop(held);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_bad_passwords_penalise_that_address_only_and_the_penalty_ends_by_itself() {
    let admission = AdmissionConfig {
        penalty_after_failures: 3,
        penalty_initial: Duration::from_secs(2),
        penalty_max: Duration::from_secs(4),
        ..AdmissionConfig::default()
    };
    let server = server(&[], admission).await;
    let bad = basic(USER, "guess");
    let good = basic(USER, PASSWORD);
    for _ in 0..3 {
        assert_eq!(
            status("127.0.0.5", server.addr, &[("Authorization", &bad)]).await,
            401
        );
    }
    // Penalised: refused without its credentials being checked, even the right ones.
    let (head, _) = exchange(
        "127.0.0.5",
        server.addr,
        &upgrade_request(&[("Authorization", &good)]),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    // Another address is not affected.
    assert_eq!(
        status("127.0.0.6", server.addr, &[("Authorization", &good)]).await,
        101
    );
    // The penalty ends by itself.
    within(async {
        loop {
            match status("127.0.0.5", server.addr, &[("Authorization", &good)]).await {
                101 => break,
                429 => tokio::time::sleep(Duration::from_millis(250)).await,
                other => panic!("answered {other}"),
            }
        }
    })
    .await;
    stop(server).await;
}
