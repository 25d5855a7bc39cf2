//! The `distio-serve` binary: SIGTERM stops it with exit code 0, and neither SIGTERM nor
//! SIGKILL leaves a slave behind.

mod common;

use common::{Client, make_root, wait_gone, within};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

fn start_binary() -> (Child, SocketAddr) {
    let root = make_root();
    let mut child = Command::new(env!("CARGO_BIN_EXE_distio-serve"))
        .args([
            "--port",
            "0",
            "--interpreter",
            "sh=/bin/sh",
            "--allow-root-slaves",
        ])
        .arg("--root")
        .arg(&root)
        .env("DISTIO_SERVE_ADMIN_PORT", "0")
        .env("DISTIO_SERVE_CONTROL_SOCKET", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start distio-serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("a listening line")
        .parse()
        .unwrap();
    (child, addr)
}

async fn slaves_of(addr: SocketAddr) -> (Client, Vec<u32>) {
    let mut client = Client::connect(addr).await;
    let (_, first) = client.ready_slave().await;
    let channel = client.spawn("stubborn.sh", &[]).await;
    let second = client.spawned(channel).await;
    (client, vec![first.pid, second.pid])
}

fn signal(child: &Child, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_with_code_0_and_no_slave_left() {
    let (mut server, addr) = start_binary();
    let (_client, pids) = slaves_of(addr).await;
    signal(&server, libc::SIGTERM);
    let status = within(tokio::task::spawn_blocking(move || server.wait()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    for pid in pids {
        assert!(wait_gone(pid).await, "slave {pid} outlived the server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_server_leaves_no_slave() {
    let (mut server, addr) = start_binary();
    let (_client, pids) = slaves_of(addr).await;
    signal(&server, libc::SIGKILL);
    within(tokio::task::spawn_blocking(move || server.wait()))
        .await
        .unwrap()
        .unwrap();
    for pid in pids {
        assert!(
            wait_gone(pid).await,
            "slave {pid} outlived the killed server"
        );
    }
}
