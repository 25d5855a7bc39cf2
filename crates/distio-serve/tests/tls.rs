//! TLS end to end: the real master over `wss://` against the real server (in this process,
//! or the binary for SIGHUP), with certificates made by `rcgen` at test time.

mod common;

use common::{TestServer, make_root, start, within};
use distio_master::prelude::*;
use distio_master::{ClientTls, Master, MasterError, Output, SpawnOptions};
use distio_serve::{ServeError, Server, ServerTls, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A certificate authority that signs server and client certificates into `dir`.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// Writes `{stem}.pem` and `{stem}.key`; returns their paths.
    fn sign(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    fn server(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        self.sign(
            dir,
            stem,
            &["localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }
}

fn server_tls(cert: &Path, key: &Path, client_ca: Option<&Path>) -> ServerTls {
    ServerTls::load(&TlsConfig {
        cert: cert.to_owned(),
        key: key.to_owned(),
        client_ca: client_ca.map(Path::to_owned),
    })
    .expect("the TLS files load")
}

fn wss(port: u16) -> String {
    format!("wss://localhost:{port}")
}

async fn spawn_one(port: u16, tls: ClientTls) -> Result<distio_master::Slave, MasterError> {
    let master = Master::new();
    let options = SpawnOptions::remote(wss(port), "slave.sh")
        .output(Output::Null)
        .tls(tls);
    let slave = within(master.spawn(options)).await?;
    within(slave.ready()).await?;
    Ok(slave)
}

async fn square(slave: &distio_master::Slave, n: u64) -> u64 {
    within(slave.exec("square", &n))
        .await
        .expect("exec")
        .value()
        .expect("a number")
}

async fn stop(server: TestServer) {
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_spawns_and_execs_over_wss_with_a_ca_file() {
    let dir = make_root();
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server(&dir, "server");
    let server = start(|b| b.tls(server_tls(&cert, &key, None))).await;
    let slave = spawn_one(server.addr.port(), ClientTls::new().ca_file(&ca.pem))
        .await
        .expect("spawn over wss://");
    assert!(slave.is_remote());
    assert_eq!(square(&slave, 12).await, 144);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_does_not_trust_the_ca_gets_an_error_that_says_so() {
    let dir = make_root();
    let ca = Ca::new(&dir, "ca");
    let other = Ca::new(&dir, "other");
    let (cert, key) = ca.server(&dir, "server");
    let server = start(|b| b.tls(server_tls(&cert, &key, None))).await;
    let err = spawn_one(server.addr.port(), ClientTls::new().ca_file(&other.pem))
        .await
        .unwrap_err();
    assert!(matches!(err, MasterError::TlsUnknownCa { .. }), "{err}");
    assert!(err.to_string().contains("ClientTls::ca_file"), "{err}");
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_the_certificate_does_not_list_is_a_name_mismatch() {
    let dir = make_root();
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server(&dir, "server");
    let server = start(|b| b.tls(server_tls(&cert, &key, None))).await;
    let master = Master::new();
    let options = SpawnOptions::remote(
        format!("wss://127.0.0.1:{}", server.addr.port()),
        "slave.sh",
    )
    .tls(ClientTls::new().ca_file(&ca.pem));
    let err = within(master.spawn(options)).await.unwrap_err();
    assert!(matches!(err, MasterError::TlsNameMismatch { .. }), "{err}");
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ws_url_with_tls_settings_is_refused_rather_than_sent_in_the_clear() {
    let server = start(|b| b).await;
    let master = Master::new();
    let options =
        SpawnOptions::remote(format!("ws://{}", server.addr), "slave.sh").tls(ClientTls::new());
    let err = within(master.spawn(options)).await.unwrap_err();
    assert!(matches!(err, MasterError::HostUrl { .. }), "{err}");
    assert!(err.to_string().contains("wss://"), "{err}");
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_master_without_a_client_certificate_and_admits_one_with_it() {
    let dir = make_root();
    let ca = Ca::new(&dir, "ca");
    let client_ca = Ca::new(&dir, "client-ca");
    let stranger_ca = Ca::new(&dir, "stranger-ca");
    let (cert, key) = ca.server(&dir, "server");
    let server = start(|b| b.tls(server_tls(&cert, &key, Some(&client_ca.pem)))).await;
    let port = server.addr.port();

    let err = spawn_one(port, ClientTls::new().ca_file(&ca.pem))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MasterError::TlsClientCertRefused { .. }),
        "{err}"
    );

    let (bad_cert, bad_key) = stranger_ca.sign(
        &dir,
        "stranger",
        &["master"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let err = spawn_one(
        port,
        ClientTls::new()
            .ca_file(&ca.pem)
            .client_cert(&bad_cert, &bad_key),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, MasterError::TlsClientCertRefused { .. }),
        "a certificate from another CA: {err}"
    );

    let (client_cert, client_key) = client_ca.sign(
        &dir,
        "master",
        &["master"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let slave = spawn_one(
        port,
        ClientTls::new()
            .ca_file(&ca.pem)
            .client_cert(&client_cert, &client_key),
    )
    .await
    .expect("a master with a client certificate gets in");
    assert_eq!(square(&slave, 7).await, 49);
    stop(server).await;
}

#[tokio::test]
async fn plaintext_on_a_non_loopback_address_refuses_to_start_but_tls_satisfies_the_rule() {
    let dir = make_root();
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server(&dir, "server");
    let err = Server::builder()
        .address("0.0.0.0".parse().unwrap())
        .port(0)
        .root(&dir)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::Plaintext { .. }), "{err}");
    let server = Server::builder()
        .address("0.0.0.0".parse().unwrap())
        .port(0)
        .root(&dir)
        .tls(server_tls(&cert, &key, None))
        .containment(common::root_slaves_allowed())
        .build()
        .await
        .expect("TLS may listen anywhere");
    drop(server);
}

#[test]
fn bad_tls_files_stop_the_start_naming_the_file_without_showing_the_key() {
    let dir = make_root();
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server(&dir, "server");
    let (_, other_key) = ca.server(&dir, "other");
    let key_text = std::fs::read_to_string(&other_key).unwrap();
    let run = |args: &[&Path]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_distio-serve"));
        command.args(["--port", "0", "--print-config"]);
        for (flag, path) in ["--tls-cert", "--tls-key"].iter().zip(args) {
            command.arg(flag).arg(path);
        }
        command.output().unwrap()
    };
    let out = run(&[&cert, &other_key]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("other.key") && stderr.contains("does not belong"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(key_text.lines().nth(1).unwrap()),
        "{stderr}"
    );
    let out = run(&[&cert, &dir.join("missing.key")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.key"), "{stderr}");
    let out = run(&[&cert, &key]);
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("[tls]") && printed.contains("server.key"),
        "{printed}"
    );
}

/// The binary with TLS files; returns it and its port.
fn start_binary(
    root: &Path,
    cert: &Path,
    key: &Path,
) -> (Child, u16, std::thread::JoinHandle<String>) {
    let mut child = common::serve_binary()
        .args(["--port", "0", "--interpreter", "sh=/bin/sh", "--root"])
        .arg(root)
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
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
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("a listening line")
        .parse()
        .unwrap();
    (child, addr.port(), stderr)
}

/// SIGKILLs the server if the test ends (a failed assertion) before it stopped it; by then
/// a server that stopped was waited for, so its pid is not reused within the test.
struct KillIfLeft(u32);

impl Drop for KillIfLeft {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_for_new_connections_while_a_session_keeps_working() {
    let root = make_root();
    let dir = make_root();
    let old_ca = Ca::new(&dir, "old-ca");
    let new_ca = Ca::new(&dir, "new-ca");
    let (cert, key) = old_ca.server(&dir, "server");
    let (mut child, port, stderr) = start_binary(&root, &cert, &key);
    let _reaper = KillIfLeft(child.id());

    let old_session = spawn_one(port, ClientTls::new().ca_file(&old_ca.pem))
        .await
        .expect("spawn with the first certificate");
    assert_eq!(square(&old_session, 3).await, 9);

    // A broken pair first: the reload fails and the old certificate stays.
    std::fs::write(&key, "not a key\n").unwrap();
    kill(&child, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    spawn_one(port, ClientTls::new().ca_file(&old_ca.pem))
        .await
        .expect("a failed reload keeps the old certificate");

    // Then the new pair, in place.
    let (new_cert, new_key) = new_ca.server(&dir, "new-server");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    kill(&child, "-HUP");
    let new_session = within(async {
        loop {
            match spawn_one(port, ClientTls::new().ca_file(&new_ca.pem)).await {
                Ok(slave) => break slave,
                Err(MasterError::TlsUnknownCa { .. }) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(other) => panic!("{other}"),
            }
        }
    })
    .await;
    assert_eq!(square(&new_session, 5).await, 25);
    let err = spawn_one(port, ClientTls::new().ca_file(&old_ca.pem))
        .await
        .unwrap_err();
    assert!(matches!(err, MasterError::TlsUnknownCa { .. }), "{err}");
    // The session opened before the reload still works.
    assert_eq!(square(&old_session, 4).await, 16);

    kill(&child, "-TERM");
    let status = within(tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let log = stderr.join().unwrap();
    assert!(log.contains("kept the current TLS certificate"), "{log}");
    assert!(log.contains("TLS certificate and key reloaded"), "{log}");
}
