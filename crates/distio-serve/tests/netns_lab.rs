//! The multi-host lab of `common::netns`: three real servers in three network namespaces,
//! one of them cut off and restored, and nothing of the lab left once it is dropped.
//! Skips (passes, saying so on stderr) unless run as root where `ip netns` works.

mod common;

use common::netns::NetLab;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Generous: the machine may be loaded.
const CONNECT: Duration = Duration::from_secs(5);
/// How long a connect to a cut host is given to (wrongly) succeed.
const CUT_PROBE: Duration = Duration::from_secs(2);

fn connects(addr: SocketAddr, within: Duration) -> Result<(), std::io::Error> {
    TcpStream::connect_timeout(&addr, within).map(drop)
}

/// Retries a connect for up to 20 s (ARP and the bridge port need a moment after a restore).
fn connects_eventually(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if connects(addr, Duration::from_secs(1)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn ip_output(args: &[&str]) -> String {
    let output = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn three_servers_one_cut_and_restored_then_all_removed() {
    let Some(lab) = NetLab::new(3) else {
        return;
    };
    let servers: Vec<_> = (0..3).map(|i| lab.start_serve(i, 1337, &[])).collect();
    for (i, server) in servers.iter().enumerate() {
        assert_eq!(server.addr.ip(), lab.addr(i));
        connects(server.addr, CONNECT)
            .unwrap_or_else(|e| panic!("server {i} at {}: {e}", server.addr));
    }

    // A connection opened before the cut, written to during it: the cut must not reset it.
    let mut held = TcpStream::connect_timeout(&servers[1].addr, CONNECT).expect("connect to 1");
    held.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    lab.cut(1);
    held.write_all(b"GET /session HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        .expect("a write during the cut is only buffered");
    let refused = connects(servers[1].addr, CUT_PROBE);
    assert!(refused.is_err(), "a connect to the cut host succeeded");
    eprintln!("connect to the cut host: {:?}", refused.err());
    for i in [0, 2] {
        connects(servers[i].addr, CONNECT)
            .unwrap_or_else(|e| panic!("server {i} unreachable while 1 is cut: {e}"));
    }

    lab.restore(1);
    assert!(
        connects_eventually(servers[1].addr),
        "server 1 after restore"
    );
    // The held connection's request arrives after the restore and is answered.
    let mut answer = [0u8; 9];
    held.read_exact(&mut answer)
        .expect("an answer on the connection held across the cut");
    assert_eq!(
        &answer[..7],
        b"HTTP/1.",
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // Dropping the lab kills what runs in it and removes every namespace and interface.
    let mut sleeper = std::process::Command::new("sleep");
    sleeper.arg("1000");
    let sleeper = lab.spawn_in(2, sleeper);
    let pids: Vec<u32> = servers
        .iter()
        .map(|s| s.pid())
        .chain([sleeper.pid()])
        .collect();
    let (netns, links) = lab.resource_names();
    assert_eq!((netns.len(), links.len()), (3, 4));
    let gateway = lab.gateway().to_string();
    drop(lab);
    for pid in pids {
        assert!(common::process_gone(pid), "process {pid} outlived the lab");
    }
    drop(servers);
    drop(sleeper);
    let namespaces = ip_output(&["netns", "list"]);
    let interfaces = ip_output(&["-o", "link", "show"]);
    let addresses = ip_output(&["-o", "addr", "show"]);
    for name in &netns {
        assert!(
            !namespaces
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "namespace {name} remains:\n{namespaces}"
        );
    }
    for name in &links {
        assert!(
            !interfaces.contains(&format!(" {name}:"))
                && !interfaces.contains(&format!(" {name}@")),
            "interface {name} remains:\n{interfaces}"
        );
    }
    assert!(
        !addresses.contains(&format!(" {gateway}/")),
        "{gateway} remains:\n{addresses}"
    );
}

#[test]
fn a_panicking_test_leaves_nothing_of_its_lab() {
    let made = std::panic::catch_unwind(|| {
        let Some(lab) = NetLab::new(2) else {
            return;
        };
        let mut sleeper = std::process::Command::new("sleep");
        sleeper.arg("1000");
        // Owned by the lab only: leaked, so only the lab's drop can end it.
        let pid = std::mem::ManuallyDrop::new(lab.spawn_in(0, sleeper)).pid();
        let names = lab.resource_names();
        std::panic::panic_any((pid, names));
    });
    let Err(payload) = made else {
        return; // skipped
    };
    let (pid, (netns, links)) = *payload
        .downcast::<(u32, (Vec<String>, Vec<String>))>()
        .expect("the test's own panic");
    // Not reaped (its owner was leaked), so gone means a zombie or reaped by init.
    assert!(common::process_gone(pid), "process {pid} outlived the lab");
    let namespaces = ip_output(&["netns", "list"]);
    let interfaces = ip_output(&["-o", "link", "show"]);
    for name in netns.iter().chain(&links) {
        assert!(
            !namespaces.contains(name.as_str()) && !interfaces.contains(name.as_str()),
            "{name} remains after a panic"
        );
    }
}

#[test]
fn lab_names_are_recognised_for_the_sweep() {
    use common::netns::lab_pid;
    assert_eq!(lab_pid("dn42a2-0sw"), Some(0x42a2));
    assert_eq!(lab_pid("dn42a2-1fv12"), Some(0x42a2));
    assert_eq!(lab_pid("dn42a2-0-3"), Some(0x42a2));
    for other in [
        "dn42a2-0",
        "dn42a2-0b",
        "dn42a2-v1",
        "eth0",
        "dnx-0sw",
        "dn1-0v",
    ] {
        assert_eq!(lab_pid(other), None, "{other}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_server_runs_slaves_for_a_master_in_the_root_namespace() {
    let Some(lab) = NetLab::new(1) else {
        return;
    };
    let server = lab.start_serve(0, 0, &[]);
    let mut client = common::Client::connect(server.addr).await;
    let (channel, spawned) = client.ready_slave().await;
    client
        .request(channel, 1, "echo", &"over the bridge".to_owned())
        .await;
    match client.routed(channel).await {
        distio_proto::Frame::Response(response) => {
            let echoed: String = response.outcome.expect("task ok").decode().unwrap();
            assert_eq!(echoed, "over the bridge");
        }
        other => panic!("expected a response, got {other:?}"),
    }
    client.close().await;
    assert!(
        common::wait_gone(spawned.pid).await,
        "the slave outlived its session"
    );
}

#[test]
fn a_server_killed_with_sigkill_stops_accepting() {
    let Some(lab) = NetLab::new(1) else {
        return;
    };
    let mut server = lab.start_serve(0, 0, &["--max-concurrent-slaves", "2"]);
    assert_ne!(server.addr.port(), 0, "port 0 resolves to the real port");
    let addr = server.addr;
    server.kill9();
    assert!(common::process_gone(server.pid()) || server.pid() == 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while connects(addr, Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts after kill -9"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
