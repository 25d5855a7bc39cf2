//! The `distio-serve` binary under a `Type=notify` unit, as systemd sees it: a datagram
//! socket named in `NOTIFY_SOCKET` receives `READY=1` once the server listens, `WATCHDOG=1`
//! while it runs (when `WATCHDOG_USEC` asks for it) and `STOPPING=1` after SIGTERM.

mod common;

use common::{make_root, within};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A bound socket standing in for systemd's, in a fresh directory.
fn systemd_socket(name: &str) -> (PathBuf, UnixDatagram) {
    let dir = std::env::temp_dir().join(format!("distio-notify-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = UnixDatagram::bind(dir.join("notify")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    (dir, socket)
}

/// Datagrams received until one equals `wanted` (returned: all of them, in order), or
/// panics after 30 s.
fn recv_until(socket: &UnixDatagram, wanted: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = message == wanted;
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
    panic!("no {wanted} within 30 s; received {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_systemd_ready_watchdog_and_stopping() {
    let (dir, systemd) = systemd_socket("cycle");
    let root = make_root();
    let mut server = common::spawn_serve(
        common::serve_binary()
            .args(["--port", "0", "--root"])
            .arg(&root)
            .env("NOTIFY_SOCKET", dir.join("notify"))
            // A 400 ms watchdog: pings every 200 ms. No WATCHDOG_PID: it is meant for this
            // process.
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID")
            .stderr(Stdio::null()),
    );

    let before_ready = recv_until(&systemd, "READY=1");
    assert!(
        !before_ready.iter().any(|m| m == "STOPPING=1"),
        "{before_ready:?}"
    );
    let status = recv_until(&systemd, "WATCHDOG=1");
    assert!(
        status.iter().any(|m| m.starts_with("STATUS=listening on ")),
        "{status:?}"
    );
    // The watchdog keeps being petted.
    recv_until(&systemd, "WATCHDOG=1");

    let sent = Command::new("kill")
        .args(["-TERM", &server.child.as_ref().unwrap().id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    recv_until(&systemd, "STOPPING=1");
    let mut child = server.child.take().unwrap();
    let status = within(tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    std::fs::remove_dir_all(dir).unwrap();
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_notify_socket_does_not_stop_the_server() {
    let dir = std::env::temp_dir().join(format!("distio-notify-it-{}-none", std::process::id()));
    let root = make_root();
    let mut server = common::spawn_serve(
        common::serve_binary()
            .args(["--port", "0", "--root"])
            .arg(&root)
            .env("NOTIFY_SOCKET", dir.join("nobody-listens"))
            .env("WATCHDOG_USEC", "100000")
            .stderr(Stdio::null()),
    );
    let addr = server.addr;
    // Still serving after several failed watchdog pings.
    tokio::time::sleep(Duration::from_millis(500)).await;
    within(tokio::net::TcpStream::connect(addr)).await.unwrap();
    let sent = Command::new("kill")
        .args(["-TERM", &server.child.as_ref().unwrap().id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut child = server.child.take().unwrap();
    let status = within(tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_dir_all(root);
}
