//! Credentials at rest and in logs: the real binary with a password hash and with a plain
//! password, JSON logs at trace level, bad and good credentials; then every byte it wrote
//! is searched for the password, the hash and the base64 of `user:password`. Also the
//! `hash-password` subcommand.

mod common;

use base64::Engine;
use common::{make_root, within};
use distio_serve::auth::PasswordHash;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{StatusCode, header};

const USER: &str = "ops";
const PASSWORD: &str = "pw-S3cr3t:9d2e-never-logged";
const WRONG: &str = "wrong-Pa55:0b7a-never-logged";

fn command() -> Command {
    common::serve_binary()
}

/// The binary, killed if the test ends before it was stopped (it holds whatever
/// descriptors the test runner had).
struct Running {
    child: Option<Child>,
    addr: SocketAddr,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = r.read_to_string(&mut text);
        text
    })
}

impl Running {
    fn start(config: &Path, dir: &Path) -> Running {
        let mut child = command()
            .args(["--config", config.to_str().unwrap()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start distio-serve");
        let stderr = reader(child.stderr.take().unwrap());
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).expect("the listening line");
        let mut running = Running {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            stdout: None,
            stderr: Some(stderr),
        };
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            drop(running.child.take().map(|mut c| c.kill()));
            panic!("no listening line: {line:?}");
        };
        running.addr = addr.parse().unwrap();
        let first = line.clone();
        running.stdout = Some(std::thread::spawn(move || {
            let mut text = first;
            let _ = out.read_to_string(&mut text);
            text
        }));
        running
    }

    /// SIGTERM; everything written on standard output and standard error.
    async fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = within(tokio::task::spawn_blocking(move || child.wait()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(0));
        let out = self.stdout.take().unwrap().join().unwrap();
        let err = self.stderr.take().unwrap().join().unwrap();
        format!("{out}\n{err}")
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The HTTP status of a session upgrade with an optional `Authorization` header.
async fn upgrade(addr: SocketAddr, auth: Option<&str>) -> StatusCode {
    let mut request = format!("ws://{addr}/session")
        .into_client_request()
        .unwrap();
    if let Some(auth) = auth {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, auth.parse().unwrap());
    }
    match within(tokio_tungstenite::connect_async(request)).await {
        Ok((mut ws, response)) => {
            let _ = ws.close(None).await;
            response.status()
        }
        Err(tungstenite::Error::Http(response)) => response.status(),
        Err(other) => panic!("unexpected connection error: {other}"),
    }
}

fn config(root: &Path, auth: &str) -> std::path::PathBuf {
    let path = root.join("serve.toml");
    std::fs::write(
        &path,
        format!(
            "port = 0\nroot = {:?}\nlog_level = \"trace\"\nlog_format = \"json\"\n\
             [basic_auth]\nusername = \"{USER}\"\n{auth}\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    path
}

/// Bad and good credentials against a running binary; its whole output.
async fn exercise(root: &Path, auth: &str) -> String {
    let server = Running::start(&config(root, auth), root);
    for (header, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(basic(USER, WRONG)), StatusCode::UNAUTHORIZED),
        (Some(basic("nobody", PASSWORD)), StatusCode::UNAUTHORIZED),
        (Some(basic(USER, PASSWORD)), StatusCode::SWITCHING_PROTOCOLS),
        (Some(basic(USER, PASSWORD)), StatusCode::SWITCHING_PROTOCOLS),
        (Some(format!("Basic {PASSWORD}")), StatusCode::UNAUTHORIZED),
    ] {
        assert_eq!(
            upgrade(server.addr, header.as_deref()).await,
            expected,
            "{header:?}"
        );
    }
    server.stop().await
}

fn assert_clean(output: &str, secrets: &[&str]) {
    assert!(output.contains("listening on"), "{output}");
    for secret in secrets {
        assert!(
            !output.contains(secret),
            "{secret:?} appears in the output:\n{output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs() {
    let root = make_root();
    let hash = PasswordHash::derive(PASSWORD.as_bytes(), PasswordHash::MIN_ITERATIONS)
        .unwrap()
        .to_string();
    let salt_and_hash = hash.splitn(4, '$').nth(3).unwrap().to_owned();
    let b64 =
        |u: &str, p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
    let owned: Vec<String> = vec![
        PASSWORD.to_owned(),
        WRONG.to_owned(),
        hash.clone(),
        salt_and_hash,
        b64(USER, PASSWORD),
        b64(USER, WRONG),
        b64("nobody", PASSWORD),
        "pw-S3cr3t".to_owned(),
    ];
    let secrets: Vec<&str> = owned.iter().map(String::as_str).collect();

    let hashed = exercise(&root, &format!("password_hash = \"{hash}\"")).await;
    assert_clean(&hashed, &secrets);
    assert!(hashed.contains("password hash"), "{hashed}");
    assert!(hashed.contains("\"level\":\"TRACE\"") || hashed.contains("\"level\":\"DEBUG\""));

    let plain = exercise(&root, &format!("password = \"{PASSWORD}\"")).await;
    assert_clean(&plain, &secrets);
    assert_eq!(plain.matches("kept in plain text").count(), 1, "{plain}");

    // --print-config shows neither.
    for auth in [
        format!("password_hash = \"{hash}\""),
        format!("password = \"{PASSWORD}\""),
    ] {
        let out = command()
            .args([
                "--config",
                config(&root, &auth).to_str().unwrap(),
                "--print-config",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("\"***\""), "{text}");
        for secret in &secrets {
            assert!(
                !text.contains(secret),
                "{secret:?} in --print-config:\n{text}"
            );
        }
    }
}

#[test]
fn hash_password_prints_a_hash_the_server_accepts_and_refuses_empty_input() {
    let run = |input: &[u8], args: &[&str]| {
        let mut child = command()
            .arg("hash-password")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A refused command line ends the process before it reads: the pipe may be closed.
        let _ = child.stdin.take().unwrap().write_all(input);
        child.wait_with_output().unwrap()
    };
    let out = run(format!("{PASSWORD}\n").as_bytes(), &[]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let hash = PasswordHash::parse(stdout.trim()).unwrap();
    assert_eq!(hash.iterations(), PasswordHash::MIN_ITERATIONS);
    assert!(hash.verify(PASSWORD.as_bytes()));
    assert!(stderr.contains("password_hash"), "{stderr}");
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));

    let out = run(b"\n", &[]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    let out = run(b"pw\n", &["--iterations", "1000"]);
    assert_eq!(out.status.code(), Some(64));
    let out = run(b"pw\n", &["--iterations", "700000"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("$pbkdf2-sha256$i=700000$"), "{text}");
}
