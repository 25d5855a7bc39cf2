//! The `distio-serve` binary with its configuration: TOML and Dist.io JSON files, the
//! original's flags, bad configs (exit 78), `--print-config`, the plaintext guard, basic
//! auth and the allowlist end to end, and what its log never contains.

mod common;

use base64::Engine;
use common::{Client, make_root, within};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{StatusCode, header};

const PASSWORD: &str = "pw-S3cr3t:7c1f";

fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_distio-serve"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DISTIO_SERVE_") {
            command.env_remove(key);
        }
    }
    // Several servers run at once: none takes the default admin port or control socket.
    command
        .env("DISTIO_SERVE_ADMIN_PORT", "0")
        .env("DISTIO_SERVE_CONTROL_SOCKET", "off");
    command
}

/// Runs the binary to its end (for the cases that must not start).
fn run(args: &[&str], dir: &Path) -> Output {
    command()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run distio-serve")
}

fn write(root: &Path, name: &str, text: &str) -> PathBuf {
    let path = root.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A running binary: its address and, once it ends, everything it wrote on stderr.
struct Running {
    child: Child,
    addr: SocketAddr,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(args: &[&str], dir: &Path) -> Running {
        // The tests run as root.
        let mut child = command()
            .args(args)
            .arg("--allow-root-slaves")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start distio-serve");
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the listening line");
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.wait();
            panic!(
                "no listening line: {line:?}; stderr: {}",
                stderr.join().unwrap()
            );
        };
        let addr = addr.parse().unwrap();
        Running {
            child,
            addr,
            stderr,
        }
    }

    /// SIGTERM; returns the exit code and the stderr text.
    async fn stop(self) -> (Option<i32>, String) {
        let Running {
            mut child, stderr, ..
        } = self;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = within(tokio::task::spawn_blocking(move || child.wait()))
            .await
            .unwrap()
            .unwrap();
        (status.code(), stderr.join().unwrap())
    }
}

/// A session with a ready slave that echoes: the server really serves.
async fn echo_works(client: &mut Client) {
    let (channel, _) = client.ready_slave().await;
    client
        .request(channel, 1, "echo", &"through the binary".to_owned())
        .await;
    match client.routed(channel).await {
        distio_proto::Frame::Response(response) => {
            let text: String = response.outcome.expect("task ok").decode().unwrap();
            assert_eq!(text, "through the binary");
        }
        other => panic!("expected a response, got {other:?}"),
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Tries the WebSocket upgrade with an optional `Authorization` header.
async fn upgrade(
    addr: SocketAddr,
    auth: Option<&str>,
) -> Result<common::Ws, tungstenite::http::Response<Option<Vec<u8>>>> {
    let mut request = format!("ws://{addr}/session")
        .into_client_request()
        .unwrap();
    if let Some(auth) = auth {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, auth.parse().unwrap());
    }
    match within(tokio_tungstenite::connect_async(request)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(*response),
        Err(other) => panic!("unexpected connection error: {other}"),
    }
}

fn toml_config(root: &Path, extra: &str) -> PathBuf {
    write(
        root,
        "serve.toml",
        &format!(
            "port = 0\nroot = {:?}\nkill_grace = \"500ms\"\nshutdown_grace = \"5s\"\n\
             {extra}\n[interpreters]\nsh = \"/bin/sh\"\n",
            root.display().to_string()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_config_file_serves_and_sigterm_exits_0() {
    let root = make_root();
    let config = toml_config(&root, "");
    let server = Running::start(&["--config", config.to_str().unwrap()], &root);
    let mut client = Client::connect(server.addr).await;
    echo_works(&mut client).await;
    let (code, stderr) = server.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("listening on"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originals_json_config_file_serves() {
    let root = make_root();
    // The original's keys only; `.sh` runs with /bin/sh by default.
    let config = write(
        &root,
        "serve.json",
        &format!(
            r#"{{ "logLevel": 4, "port": 0, "root": {:?}, "maxConcurrentSlaves": 4, "killSlavesAfter": 900000 }}"#,
            root.display().to_string()
        ),
    );
    let server = Running::start(&["--config", config.to_str().unwrap()], &root);
    let mut client = Client::connect(server.addr).await;
    echo_works(&mut client).await;
    let (code, stderr) = server.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originals_flags_work() {
    let root = make_root();
    // Port 1337 in the file; the flag wins. `root` relative to the working directory.
    write(
        &root,
        "file.json",
        r#"{ "logLevel": 0, "port": 1337, "root": "." }"#,
    );
    let server = Running::start(&["--port=0", "--logLevel=3", "--config=file.json"], &root);
    assert_ne!(server.addr.port(), 1337);
    let mut client = Client::connect(server.addr).await;
    echo_works(&mut client).await;
    let (code, stderr) = server.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
    // logLevel 3 (info) from the flag, not 0 (errors only) from the file.
    assert!(stderr.contains("listening on"), "{stderr}");
}

#[test]
fn a_bad_config_exits_78_naming_the_key_or_file() {
    let root = make_root();
    write(&root, "typo.toml", "prot = 1\n");
    let out = run(&["--config", "typo.toml"], &root);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("`prot`"), "{stderr}");
    assert!(out.stdout.is_empty());

    write(&root, "type.toml", "queue_limit = \"many\"\n");
    let out = run(&["--config", "type.toml"], &root);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("`queue_limit`"), "{stderr}");

    let out = run(&["--config", "missing.toml"], &root);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");

    let out = command()
        .current_dir(&root)
        .env("DISTIO_SERVE_PORT", "nope")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("DISTIO_SERVE_PORT"), "{stderr}");
}

#[test]
fn help_version_and_usage_errors() {
    let root = make_root();
    let out = run(&["--help"], &root);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--insecure-plaintext",
        "--print-config",
        "--interpreter",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help: {help}");
    }
    let out = run(&["--version"], &root);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("distio-serve"));
    let out = run(&["--no-such-flag"], &root);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn print_config_hides_the_password() {
    let root = make_root();
    toml_config(
        &root,
        &format!("[basic_auth]\nusername = \"ops\"\npassword = {PASSWORD:?}\n"),
    );
    let out = run(&["--config", "serve.toml", "--print-config"], &root);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("password = \"***\""), "{stdout}");
    assert!(stdout.contains("username = \"ops\""), "{stdout}");
    assert!(!stdout.contains(PASSWORD), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
    // It is the effective configuration: every layer applied.
    assert!(stdout.contains("port = 0"), "{stdout}");
}

#[test]
fn a_non_loopback_bind_needs_insecure_plaintext_and_is_refused_before_binding() {
    let root = make_root();
    // The port is taken: had the server tried to bind, it would fail with "in use" and 1.
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(&["--bind", "0.0.0.0", "--port", &port], &root);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("in the clear"), "{stderr}");
    assert!(stderr.contains("--insecure-plaintext"), "{stderr}");
    assert!(out.stdout.is_empty());

    // With the opt-in it goes on to bind (and finds the port taken: exit 1).
    let out = run(
        &[
            "--bind",
            "0.0.0.0",
            "--port",
            &port,
            "--insecure-plaintext",
            "--allow-root-slaves",
        ],
        &root,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_end_to_end() {
    let root = make_root();
    toml_config(
        &root,
        &format!("[basic_auth]\nusername = \"ops\"\npassword = {PASSWORD:?}\n"),
    );
    let server = Running::start(&["--config", "serve.toml"], &root);

    for auth in [
        None,
        Some(basic("ops", "wrong")),
        Some(basic("someone", PASSWORD)),
    ] {
        let response = upgrade(server.addr, auth.as_deref()).await.unwrap_err();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"distio-serve\""
        );
    }
    let ws = upgrade(server.addr, Some(&basic("ops", PASSWORD)))
        .await
        .expect("the right credentials upgrade");
    let mut client = Client::open_on(ws).await;
    echo_works(&mut client).await;
    let (code, stderr) = server.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlist_without_the_peer_answers_403_before_credentials() {
    let root = make_root();
    toml_config(
        &root,
        &format!(
            "authorized_ips = [\"10.0.0.0/8\", \"::2\"]\n\
             [basic_auth]\nusername = \"ops\"\npassword = {PASSWORD:?}\n"
        ),
    );
    let server = Running::start(&["--config", "serve.toml"], &root);
    for auth in [None, Some(basic("ops", PASSWORD))] {
        let response = upgrade(server.addr, auth.as_deref()).await.unwrap_err();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{auth:?}");
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
    let (code, stderr) = server.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_never_contains_a_password() {
    let root = make_root();
    toml_config(
        &root,
        &format!(
            "log_level = \"trace\"\n[basic_auth]\nusername = \"ops\"\npassword = {PASSWORD:?}\n"
        ),
    );
    let wrong = "wr0ng-pa55word";
    let server = Running::start(&["--config", "serve.toml"], &root);
    for auth in [
        basic("ops", wrong),
        basic("ops", PASSWORD),
        "Basic !!".into(),
    ] {
        let _ = upgrade(server.addr, Some(&auth)).await;
    }
    let ws = upgrade(server.addr, Some(&basic("ops", PASSWORD)))
        .await
        .expect("the right credentials upgrade");
    let mut client = Client::open_on(ws).await;
    echo_works(&mut client).await;
    let (code, stderr) = server.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
    // The log is there, and says what happened...
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(stderr.contains("bad_credentials"), "{stderr}");
    assert!(stderr.contains("session opened"), "{stderr}");
    // ...but no password, right or wrong, in any form.
    for secret in [
        PASSWORD.to_owned(),
        wrong.to_owned(),
        basic("ops", PASSWORD),
        basic("ops", wrong),
    ] {
        assert!(
            !stderr.contains(&secret),
            "`{secret}` in the log:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_no_warning_on_loopback_without_auth() {
    let root = make_root();
    toml_config(&root, "log_format = \"json\"\n");
    let server = Running::start(&["--config", "serve.toml"], &root);
    let (code, stderr) = server.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
    for line in stderr.lines() {
        let line: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        assert!(line.get("level").is_some(), "{line}");
    }
    assert!(stderr.contains("listening on"), "{stderr}");
    // Loopback without credentials: information, not a warning.
    assert!(!stderr.contains("\"WARN\""), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_bind_without_auth_warns() {
    let root = make_root();
    // All interfaces, but only this host may connect.
    toml_config(
        &root,
        "bind = \"0.0.0.0\"\ninsecure_plaintext = true\nauthorized_ips = [\"127.0.0.1\"]\n",
    );
    let server = Running::start(&["--config", "serve.toml"], &root);
    let (code, stderr) = server.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("anyone who can reach 0.0.0.0:"), "{stderr}");
    assert!(stderr.contains("can run the scripts under"), "{stderr}");
    assert!(stderr.contains("in the clear"), "{stderr}");
}
