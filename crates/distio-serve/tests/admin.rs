//! The operator's view of a running server: the admin endpoints (`/healthz`, `/readyz`,
//! `/metrics`) as a scripted session runs, and the operator CLI (`status`, `list`,
//! `kill`, `drain`) against the real binary.

mod common;

use common::{Client, make_root, process_gone, within};
use distio_proto::remote::{ClientEvent, ExitCause};
use distio_serve::{Access, Allowlist, BasicAuth, Credentials, Server};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header;

// base64("ops:pw")
const GOOD: &str = "Basic b3BzOnB3";

/// `GET path` on the admin listener: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    within(async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let body = response
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, body)| body.to_owned());
        (status, body)
    })
    .await
}

/// The value of the sample `series` (name and labels, as written) in a scrape; 0 when
/// absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    body
}

/// Waits until `check` holds for a fresh scrape.
async fn scrape_until(addr: SocketAddr, check: impl Fn(&str) -> bool) -> String {
    within(async {
        loop {
            let text = scrape(addr).await;
            if check(&text) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

async fn connect_with(
    addr: SocketAddr,
    auth: Option<&str>,
) -> Result<common::Ws, tungstenite::Error> {
    let mut request = format!("ws://{addr}/session")
        .into_client_request()
        .unwrap();
    if let Some(auth) = auth {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, auth.parse().unwrap());
    }
    within(tokio_tungstenite::connect_async(request))
        .await
        .map(|(ws, _)| ws)
}

fn refused_with(result: Result<common::Ws, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the session was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_a_scripted_session_runs() {
    let root = make_root();
    let access = Access {
        allowlist: Arc::new(Allowlist::parse(Vec::<String>::new()).unwrap()),
        credentials: Some(Arc::new(
            Credentials::new(&BasicAuth::with_password("ops", "pw")).unwrap(),
        )),
    };
    let server = Server::builder()
        .port(0)
        .root(&root)
        .interpreter("sh", "/bin/sh")
        .kill_grace(Duration::from_millis(500))
        .shutdown_grace(Duration::from_secs(5))
        .heartbeat(Duration::from_secs(2), 5)
        .map_router(move |router| access.protect(router))
        .containment(common::root_slaves_allowed())
        .build()
        .await
        .unwrap();
    let addr = server.local_addr();
    let state = server.state();
    let stop = server.shutdown_handle();
    let running = tokio::spawn(server.run());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    let admin_task = tokio::spawn(distio_serve::admin::serve_http(
        listener,
        state.clone(),
        std::future::pending(),
    ));

    assert_eq!(get(admin, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get(admin, "/readyz").await, (200, "ready\n".into()));
    let before = scrape(admin).await;
    assert!(before.contains("# TYPE distio_serve_spawn_queue_wait_seconds histogram"));
    assert_eq!(sample(&before, "distio_serve_sessions_open"), 0.0);

    // Two refusals: no credentials, then wrong ones.
    assert_eq!(refused_with(connect_with(addr, None).await), 401);
    assert_eq!(
        refused_with(connect_with(addr, Some("Basic b3BzOng=")).await),
        401
    );

    let ws = connect_with(addr, Some(GOOD))
        .await
        .expect("the session is accepted");
    let mut client = Client::open_on(ws).await;
    let (channel, _) = client.ready_slave().await;
    client.request(channel, 1, "echo", &"hi".to_owned()).await;
    let _ = client.routed(channel).await;
    // A script that is not there is refused.
    let missing = client.spawn("missing.sh", &[]).await;
    assert!(matches!(
        client.event_on(missing).await,
        ClientEvent::SpawnFailed(_)
    ));
    let during = scrape(admin).await;
    client.kill(channel, 9).await;
    match client.event_on(channel).await {
        ClientEvent::Exited(exited) => assert_eq!(exited.cause, ExitCause::Killed),
        other => panic!("expected the exit, got {other:?}"),
    }
    client.close().await;
    let after = scrape_until(admin, |t| sample(t, "distio_serve_sessions_open") == 0.0).await;

    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(sample(&during, "distio_serve_sessions_open"), 1.0);
    assert_eq!(sample(&during, "distio_serve_slaves_running"), 1.0);
    assert_eq!(moved("distio_serve_sessions_total"), 1.0);
    assert_eq!(
        moved(r#"distio_serve_auth_refusals_total{reason="missing"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"distio_serve_auth_refusals_total{reason="bad_credentials"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"distio_serve_spawns_total{outcome="started",reason=""}"#),
        1.0
    );
    assert_eq!(
        moved(r#"distio_serve_spawns_total{outcome="refused",reason="no_such_script"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"distio_serve_slaves_ended_total{reason="killed"}"#),
        1.0
    );
    assert_eq!(moved("distio_serve_spawn_queue_wait_seconds_count"), 1.0);
    assert_eq!(sample(&after, "distio_serve_slaves_running"), 0.0);
    // The hello and the request went to the slave; the ready and the answer came back.
    assert!(moved(r#"distio_serve_frames_relayed_total{direction="master_to_slave"}"#) >= 2.0);
    assert!(moved(r#"distio_serve_frames_relayed_total{direction="slave_to_master"}"#) >= 2.0);
    assert!(moved(r#"distio_serve_frame_bytes_relayed_total{direction="slave_to_master"}"#) > 0.0);

    // Draining: not ready, and a new session is refused.
    assert!(state.admin().drain());
    assert_eq!(get(admin, "/readyz").await, (503, "draining\n".into()));
    assert_eq!(get(admin, "/healthz").await.0, 200);
    assert_eq!(refused_with(connect_with(addr, Some(GOOD)).await), 503);

    stop.shutdown();
    within(running).await.unwrap().unwrap();
    admin_task.abort();
}

/// A running `distio-serve` binary with its admin port and control socket.
struct Binary {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    socket: PathBuf,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_binary() -> Binary {
    let root = make_root();
    let socket = root.join("ctl/control.sock");
    let mut child = common::serve_binary()
        .args(["--port", "0", "--interpreter", "sh=/bin/sh", "--root"])
        .arg(&root)
        .env("DISTIO_SERVE_ADMIN_PORT", free_port().to_string())
        .env("DISTIO_SERVE_CONTROL_SOCKET", &socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start distio-serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = |prefix: &str| -> SocketAddr {
        let line = lines.next().expect("a line").expect("stdout");
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected `{prefix}…`, got {line}"))
            .parse()
            .unwrap()
    };
    let addr = next("listening on ");
    let admin = next("admin on ");
    Binary {
        child,
        addr,
        admin,
        socket,
    }
}

/// Runs `distio-serve ARGS --control-socket SOCKET`: its exit status and standard output.
fn cli(socket: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_distio-serve"))
        .args(args)
        .arg("--control-socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .expect("run distio-serve");
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap() + &String::from_utf8_lossy(&output.stderr),
    )
}

fn cli_json(socket: &Path, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let (ok, text) = cli(socket, &args);
    assert!(ok, "{args:?} failed: {text}");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{args:?}: {err}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_lists_kills_and_drains_through_the_control_socket() {
    let mut server = start_binary();
    let socket = server.socket.clone();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);

    let status = cli_json(&socket, &["status"]);
    assert_eq!(status["result"], "status");
    assert_eq!(status["state"], "ready");
    assert_eq!(status["pid"], server.child.id());

    let mut client = Client::connect(server.addr).await;
    let (channel, spawned) = client.ready_slave().await;
    let (ok, table) = cli(&socket, &["list"]);
    assert!(ok, "{table}");
    assert!(table.contains(&spawned.pid.to_string()), "{table}");
    assert!(table.contains("slave.sh"), "{table}");
    let list = cli_json(&socket, &["list"]);
    let slaves = list["slaves"].as_array().unwrap();
    assert_eq!(slaves.len(), 1, "{list}");
    assert_eq!(slaves[0]["pid"], spawned.pid);
    assert_eq!(slaves[0]["server_id"], spawned.server_id);
    assert!(slaves[0]["rss_bytes"].as_u64().unwrap() > 0, "{list}");
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");

    // kill ends the slave; its master sees it exit.
    let id = spawned.server_id.to_string();
    let killed = cli_json(&socket, &["kill", &id, "--signal", "KILL"]);
    assert_eq!(killed["pid"], spawned.pid);
    assert_eq!(killed["signal"], 9);
    match client.event_on(channel).await {
        ClientEvent::Exited(exited) => assert_eq!(exited.signal, Some(9)),
        other => panic!("expected the exit, got {other:?}"),
    }
    assert!(process_gone(spawned.pid));
    let (ok, text) = cli(&socket, &["kill", &id]);
    assert!(!ok && text.contains("no running slave"), "{text}");

    // drain: not ready, no new session, the open one still works.
    let drained = cli_json(&socket, &["drain"]);
    assert_eq!(drained["sessions"], 1);
    assert_eq!(get(server.admin, "/readyz").await.0, 503);
    assert_eq!(refused_with(connect_with(server.addr, None).await), 503);
    assert_eq!(cli_json(&socket, &["status"])["state"], "draining");
    let (second, _) = client.ready_slave().await;
    client
        .request(second, 1, "echo", &"still here".to_owned())
        .await;
    match client.routed(second).await {
        distio_proto::Frame::Response(_) => {}
        other => panic!("expected the answer, got {other:?}"),
    }
    // The server exits once its last session ends.
    client.close().await;
    let status = within(async {
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the control socket is removed at exit");
}

#[test]
fn a_cli_without_a_server_says_so() {
    let socket = std::env::temp_dir().join(format!("distio-no-server-{}.sock", std::process::id()));
    let (ok, text) = cli(&socket, &["status"]);
    assert!(!ok);
    assert!(text.contains("cannot talk to distio-serve"), "{text}");
}
