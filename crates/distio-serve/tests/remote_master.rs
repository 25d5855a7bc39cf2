//! The real master client (`distio_master::Master` with `SpawnOptions::remote`) against the
//! real server on 127.0.0.1 port 0, with real slave processes: what works locally works
//! remotely, and each remote failure is reported as its own error naming the host.

mod common;

use common::{TestServer, process_gone, start, tcp_connections_to, wait_gone, within};
use distio_master::prelude::*;
use distio_master::{
    EndReason, ErrorKind, Location, LossCause, Master, MasterError, Output, Response, Signal,
    Slave, SlaveArray, SpawnOptions, Target,
};
use distio_patterns::{Parallel, Pipeline, Scatter, Workpool};
use distio_proto::remote::SpawnFailure;
use std::future::IntoFuture;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// Like `within`, for the slow cases (hundreds of processes on a loaded machine).
async fn within_long<F: IntoFuture>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(180), fut.into_future())
        .await
        .expect("operation hung for 180 s")
}

fn url(server: &TestServer) -> String {
    format!("ws://{}", server.addr)
}

/// Options for the test slave on `server`, its output discarded.
fn remote(server: &TestServer) -> SpawnOptions {
    SpawnOptions::remote(url(server), "slave.sh").output(Output::Null)
}

/// Options for the test slave as a local process.
fn local() -> SpawnOptions {
    SpawnOptions::current_exe()
        .expect("current exe")
        .args([
            "common::__distio_slave",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .output(Output::Null)
}

async fn ready(master: &Master, n: usize, options: SpawnOptions) -> SlaveArray {
    let slaves = within(master.spawn_many(n, options)).await.expect("spawn");
    for slave in &slaves {
        within(slave.ready()).await.expect("handshake");
    }
    slaves
}

async fn stop(server: TestServer) {
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

/// Why a request failed without an answer: its end reason and message, however the
/// failure came back (an error response, or an `Err` with catch-all on).
fn failure(result: Result<Response, MasterError>) -> (Option<EndReason>, String) {
    match result {
        Ok(response) => {
            let error = response
                .error()
                .unwrap_or_else(|| panic!("the request succeeded: {response:?}"))
                .clone();
            (response.end_reason().cloned(), error.message)
        }
        Err(MasterError::Task { end, error, .. }) => (end, error.message),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn all_gone(pids: &[u32]) -> Vec<u32> {
    pids.iter().copied().filter(|&p| !process_gone(p)).collect()
}

async fn wait_all_gone(pids: &[u32]) {
    for &pid in pids {
        assert!(wait_gone(pid).await, "slave pid {pid} is still running");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_hello_broadcast_identity_and_queries() {
    let server = start(|b| b).await;
    let host = url(&server);
    let master = Master::new();
    let slaves = ready(&master, 3, remote(&server).group("hello").alias("r")).await;
    let here = ready(&master, 1, local().group("home")).await;

    for slave in &slaves {
        assert!(slave.is_remote() && !slave.is_local());
        assert_eq!(
            slave.location(),
            &Location::Remote {
                host: host.clone(),
                script: "slave.sh".into()
            }
        );
        assert_eq!(slave.host(), Some(host.as_str()));
        assert!(slave.pid().is_some());
        assert!(slave.path().is_none());
    }
    assert!(here[0].is_local() && !here[0].is_remote() && here[0].host().is_none());
    assert_eq!(master.all().remote().ids(), slaves.ids());
    assert_eq!(master.all().local().ids(), here.ids());
    assert_eq!(master.all().in_group("hello").len(), 3);
    assert_eq!(master.all().by_alias("r-2").unwrap().id(), slaves[2].id());

    // Broadcast to the group: every remote slave answers.
    let all = within(master.tell(Target::group("hello")).to("echo", &"hi"))
        .await
        .unwrap();
    assert_eq!(all.values::<String>().unwrap(), vec!["hi"; 3]);
    // And to everyone, local and remote.
    let squares = within(master.all().exec("square", &7u64)).await.unwrap();
    assert_eq!(squares.values::<u64>().unwrap(), vec![49; 4]);

    // The slaves' own view: proxied, with the server's id and the master's.
    let mut server_ids = Vec::new();
    for slave in &slaves {
        let (id, alias, server_id, remote_id, proxied): (
            u64,
            String,
            Option<u64>,
            Option<u64>,
            bool,
        ) = within(slave.exec("identity", &()))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(id, slave.id());
        assert_eq!(Some(alias.as_str()), slave.alias());
        assert_eq!(remote_id, Some(slave.id()));
        assert!(proxied);
        server_ids.push(server_id.expect("a server id"));
    }
    server_ids.sort_unstable();
    server_ids.dedup();
    assert_eq!(server_ids.len(), 3, "server ids are distinct");
    let (_, _, server_id, remote_id, proxied): (u64, String, Option<u64>, Option<u64>, bool) =
        within(here[0].exec("identity", &()))
            .await
            .unwrap()
            .value()
            .unwrap();
    assert_eq!((server_id, remote_id, proxied), (None, None, false));

    // Counters: two broadcasts/execs and the identity request each.
    for slave in &slaves {
        assert_eq!(slave.sent(), 3, "{slave:?}");
        assert_eq!(slave.received(), 3, "{slave:?}");
        assert!(slave.is_idle());
    }

    let pids: Vec<u32> = slaves.iter().filter_map(Slave::pid).collect();
    let statuses = within(master.close_all()).await.unwrap();
    assert_eq!(statuses.len(), 4);
    wait_all_gone(&pids).await;
    assert!(master.all().is_empty());
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pattern_over_remote_slaves() {
    let server = start(|b| b).await;
    let master = Master::new();
    let slaves = ready(&master, 3, remote(&server)).await;

    let mut parallel = Parallel::new();
    parallel.add("square", &3u64, &slaves[0]).unwrap();
    parallel.add("square", &4u64, &slaves[1]).unwrap();
    parallel.add("echo", &"p", &slaves[2]).unwrap();
    let runs = within(parallel.times(3)).await.unwrap();
    for run in &runs {
        assert!(run.errors().is_empty());
        assert_eq!(run.len(), 3);
    }

    let pipeline = Pipeline::new()
        .step("square", &slaves[0])
        .step("square", slaves[1].clone())
        .step("square", &slaves[2]);
    let out = within(pipeline.execute(&2u64)).await.unwrap();
    assert_eq!(out.value::<u64>().unwrap(), 256);

    let data: Vec<u64> = (1..=20).collect();
    let scattered = within(Scatter::new("square").data(&data).unwrap().gather(&slaves))
        .await
        .unwrap();
    assert_eq!(
        scattered.values::<u64>().unwrap(),
        data.iter().map(|n| n * n).collect::<Vec<_>>()
    );

    let pool = Workpool::new(&slaves).unwrap();
    let replies = within(pool.run_all("square", &data)).await.unwrap();
    assert!(replies.errors().is_empty());
    assert_eq!(
        replies.values::<u64>().unwrap(),
        data.iter().map(|n| n * n).collect::<Vec<_>>()
    );
    assert!(pool.sent_counts().iter().all(|&(_, n)| n > 0));

    let pids: Vec<u32> = slaves.iter().filter_map(Slave::pid).collect();
    within(master.close_all()).await.unwrap();
    wait_all_gone(&pids).await;
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workpool_mixes_local_and_remote_slaves() {
    let server = start(|b| b).await;
    let master = Master::new();
    let mut slaves = ready(&master, 2, remote(&server)).await;
    for slave in &ready(&master, 2, local()).await {
        slaves.push(slave.clone());
    }
    let pool = Workpool::new(&slaves).unwrap();
    // Tasks that take a while, so every slave gets some whatever the scheduling.
    let items = vec![30u64; 40];
    let replies = within(pool.run_all("sleep", &items)).await.unwrap();
    assert!(replies.errors().is_empty(), "{:?}", replies.errors());
    assert_eq!(replies.values::<u64>().unwrap(), items);
    let counts = pool.sent_counts();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<usize>(), 40);
    for (id, sent) in counts {
        assert!(sent > 0, "slave {id} got no task");
    }
    let remote_done: u64 = master.all().remote().iter().map(Slave::received).sum();
    let local_done: u64 = master.all().local().iter().map(Slave::received).sum();
    assert!(remote_done > 0 && local_done > 0);
    assert_eq!(remote_done + local_done, 40);
    within(master.close_all()).await.unwrap();
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pause_and_the_endings_of_remote_slaves() {
    let server = start(|b| b).await;
    let master = Master::new();
    let slaves = ready(&master, 3, remote(&server)).await;

    // Events.
    let mut ticks = slaves[0].subscribe("tick");
    let n: u32 = within(slaves[0].exec("emit", &("tick", 5u32)))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(n, 5);
    for want in 0..5u32 {
        let event = within(ticks.recv()).await.expect("an event");
        assert_eq!(event.slave, slaves[0].id());
        assert_eq!(event.decode::<u32>().unwrap(), want);
    }

    // Pause (the slave side refuses requests for a while), then resume.
    within(slaves[0].exec("pause_for", &1500u64))
        .await
        .unwrap()
        .value::<()>()
        .unwrap();
    let refused = within(slaves[0].exec("echo", &"x")).await.unwrap();
    assert_eq!(refused.error().map(|e| e.kind), Some(ErrorKind::Paused));
    let mut resumed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = within(slaves[0].exec("echo", &"x")).await.unwrap();
        if answer.error().is_none() {
            resumed = true;
            break;
        }
    }
    assert!(resumed, "the slave never resumed");
    assert!(slaves[0].sent() >= 4 && slaves[0].received() == slaves[0].sent());
    assert_eq!(slaves[0].pending(), 0);

    // close(): the slave exits normally, its pid is gone.
    let pid = slaves[0].pid().unwrap();
    let status = within(slaves[0].close()).await.unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
    assert_eq!(slaves[0].end_reason(), Some(EndReason::Closed));
    assert!(wait_gone(pid).await);

    // shutdown(): a pending request still gets its answer.
    let pid = slaves[1].pid().unwrap();
    let pending = tokio::spawn(slaves[1].exec("sleep", &300u64).into_future());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = within(slaves[1].shutdown()).await.unwrap();
    assert_eq!(
        within(pending)
            .await
            .unwrap()
            .unwrap()
            .value::<u64>()
            .unwrap(),
        300,
        "shutdown let the pending request finish"
    );
    assert!(status.is_some(), "an exit status for a remote slave");
    assert_eq!(slaves[1].end_reason(), Some(EndReason::ShutDown));
    assert!(wait_gone(pid).await);

    // kill(TERM): the status says so, the pending request fails.
    let pid = slaves[2].pid().unwrap();
    let pending = tokio::spawn(slaves[2].exec("sleep", &60_000u64).into_future());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = within(slaves[2].kill(Signal::TERM)).await.unwrap();
    let status = status.expect("an exit status");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert_eq!(slaves[2].exit_status(), Some(status));
    assert_eq!(
        slaves[2].end_reason(),
        Some(EndReason::Killed(Signal::TERM))
    );
    let (end, _) = failure(within(pending).await.unwrap());
    assert_eq!(end, Some(EndReason::Killed(Signal::TERM)));
    assert!(wait_gone(pid).await);
    assert!(master.all().is_empty());

    // Refused afterwards, with the reason.
    let (end, _) = failure(within(slaves[2].exec("echo", &"late")).await);
    assert_eq!(end, Some(EndReason::Killed(Signal::TERM)));
    stop(server).await;
}

/// Expects `err` to be a refused remote spawn of `kind` whose message names `host`.
fn assert_refused(err: MasterError, kind: SpawnFailure, host: &str) {
    let text = err.to_string();
    assert!(text.contains(host), "{text}");
    match err {
        MasterError::RemoteSpawn { kind: got, .. } => assert_eq!(got, kind, "{text}"),
        other => panic!("expected RemoteSpawn {kind:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_host_not_listening() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let master = Master::new();
    let host = format!("ws://127.0.0.1:{port}");
    let err = within(master.spawn(SpawnOptions::remote(&host, "slave.sh")))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, MasterError::HostNotListening { host: h } if *h == host),
        "{err:?}"
    );
    assert!(text.contains(&host), "{text}");
    assert!(master.all().is_empty());
    // A bad URL is its own error.
    let err = within(master.spawn(SpawnOptions::remote("ftp://x", "slave.sh")))
        .await
        .unwrap_err();
    assert!(matches!(err, MasterError::HostUrl { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_the_allowlist_are_host_errors() {
    use distio_serve::{Access, Allowlist, BasicAuth, Credentials};
    use std::sync::Arc;

    let auth = BasicAuth::with_password("ops", "s3cret:with:colons");
    let access = Access {
        allowlist: Arc::new(Allowlist::parse(["127.0.0.1"]).unwrap()),
        credentials: Some(Arc::new(Credentials::new(&auth).unwrap())),
    };
    let server = start(move |b| b.map_router(move |router| access.protect(router))).await;
    let master = Master::new();
    for options in [
        remote(&server),
        remote(&server).credentials("ops", "wrong"),
        remote(&server).credentials("nobody", "s3cret:with:colons"),
    ] {
        // The host as shown: with the user (never the password) when one was given.
        let err = within(master.spawn(options)).await.unwrap_err();
        let addr = server.addr.to_string();
        assert!(err.to_string().contains(&addr), "{err}");
        assert!(
            matches!(&err, MasterError::HostUnauthorized { host: h } if h.starts_with("ws://") && h.ends_with(&addr)),
            "{err:?}"
        );
    }
    // The right credentials, set apart or in the URL (percent-encoded).
    let apart = within(master.spawn(remote(&server).credentials("ops", "s3cret:with:colons")))
        .await
        .unwrap();
    let in_url = format!("ws://ops:s3cret%3Awith%3Acolons@{}", server.addr);
    let inline =
        within(master.spawn(SpawnOptions::remote(&in_url, "slave.sh").output(Output::Null)))
            .await
            .unwrap();
    assert!(!inline.host().unwrap().contains("s3cret"));
    for slave in [&apart, &inline] {
        let echoed: String = within(slave.exec("echo", &"in"))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(echoed, "in");
    }
    within(master.close_all()).await.unwrap();
    stop(server).await;

    // 403: this address is not on the list.
    let access = Access {
        allowlist: Arc::new(Allowlist::parse(["10.9.8.7"]).unwrap()),
        credentials: None,
    };
    let server = start(move |b| b.map_router(move |router| access.protect(router))).await;
    let host = url(&server);
    let err = within(master.spawn(remote(&server))).await.unwrap_err();
    assert!(err.to_string().contains(&host), "{err}");
    assert!(
        matches!(&err, MasterError::HostForbidden { host: h } if *h == host),
        "{err:?}"
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_scripts_and_options_are_typed_errors_naming_the_host() {
    let server = start(|b| b).await;
    let host = url(&server);
    let master = Master::new();
    for (script, kind) in [
        ("missing.sh", SpawnFailure::NoSuchScript),
        ("plain.txt", SpawnFailure::NotExecutable),
        ("/bin/sh", SpawnFailure::OutsideRoot),
        ("../slave.sh", SpawnFailure::OutsideRoot),
        ("sub/../../slave.sh", SpawnFailure::OutsideRoot),
        ("escape", SpawnFailure::OutsideRoot),
    ] {
        let err = within(master.spawn(SpawnOptions::remote(&host, script)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(script), "{err}");
        assert_refused(err, kind, &host);
    }
    // Options the server decides.
    for (options, option) in [
        (remote(&server).env("A", "b"), "env"),
        (remote(&server).current_dir("/tmp"), "current_dir"),
    ] {
        let err = within(master.spawn(options)).await.unwrap_err();
        assert!(
            matches!(err, MasterError::RemoteOption { option: o } if o == option),
            "{err:?}"
        );
    }
    // An alias is free again after a refused spawn.
    let err = within(master.spawn(SpawnOptions::remote(&host, "missing.sh").alias("a")))
        .await
        .unwrap_err();
    assert_refused(err, SpawnFailure::NoSuchScript, &host);
    let slave = within(master.spawn(remote(&server).alias("a")))
        .await
        .unwrap();
    within(slave.close()).await.unwrap();
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_and_a_queue_timeout_are_typed_errors() {
    let server = start(|b| b.max_concurrent_slaves(1).queue_limit(0)).await;
    let host = url(&server);
    let master = Master::new();
    let first = ready(&master, 1, remote(&server)).await;
    let err = within(master.spawn(remote(&server))).await.unwrap_err();
    assert_refused(err, SpawnFailure::QueueFull, &host);
    within(master.close_all()).await.unwrap();
    wait_all_gone(&[first[0].pid().unwrap()]).await;
    stop(server).await;

    let server = start(|b| {
        b.max_concurrent_slaves(1)
            .queue_limit(4)
            .queue_timeout(Duration::from_millis(500))
    })
    .await;
    let host = url(&server);
    let first = ready(&master, 1, remote(&server)).await;
    let err = within(master.spawn(remote(&server))).await.unwrap_err();
    assert_refused(err, SpawnFailure::QueueTimeout, &host);
    // The place is still taken by the first, which works.
    let echoed: String = within(first[0].exec("echo", &"still"))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(echoed, "still");
    within(master.close_all()).await.unwrap();
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifetime_limit_ends_a_slave_and_fails_its_request() {
    let server = start(|b| b.kill_slaves_after(Some(Duration::from_secs(1)))).await;
    let host = url(&server);
    let master = Master::new();
    let slave = ready(&master, 1, remote(&server)).await[0].clone();
    let pid = slave.pid().unwrap();
    let (end, message) = failure(within(slave.exec("sleep", &60_000u64)).await);
    let want = EndReason::LifetimeLimit { host: host.clone() };
    assert_eq!(end, Some(want.clone()), "{message}");
    assert!(message.contains(&host), "{message}");
    assert_eq!(slave.end_reason(), Some(want));
    assert!(slave.exit_status().is_some());
    assert!(wait_gone(pid).await);
    assert!(master.all().is_empty());
    stop(server).await;
}

/// A TCP relay between the master and the server, whose connections the test can cut
/// (the network failing, as the master sees it).
struct Cable {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Cable {
    async fn to(target: std::net::SocketAddr) -> Cable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, watch) = tokio::sync::watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = watch.wait_for(|&cut| cut) => {}
                    }
                });
            }
        });
        Cable { addr, cut, accept }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_fails_every_pending_request_with_host_lost() {
    // Resuming off on both sides: a lost connection ends the session at once (resuming is
    // tested in tests/resume.rs).
    let server = start(|b| b.resume_grace(Duration::ZERO)).await;
    let cable = Cable::to(server.addr).await;
    let host = format!("ws://{}", cable.addr);
    let master = Master::new();
    let options = SpawnOptions::remote(&host, "slave.sh")
        .output(Output::Null)
        .link(distio_master::LinkSettings {
            resume_window: Duration::ZERO,
            ..distio_master::LinkSettings::default()
        });
    let slaves = ready(&master, 3, options.clone()).await;
    let pids: Vec<u32> = slaves.iter().filter_map(Slave::pid).collect();
    let pending: Vec<_> = slaves
        .iter()
        .flat_map(|s| [s.exec("sleep", &60_000u64), s.exec("sleep", &60_000u64)])
        .map(|exec| tokio::spawn(exec.into_future()))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    cable.cut();
    for request in pending {
        // Promptly: long before any heartbeat would notice.
        let result = tokio::time::timeout(Duration::from_secs(10), request)
            .await
            .expect("a pending request outlived its lost host")
            .unwrap();
        let (end, message) = failure(result);
        match end {
            Some(EndReason::HostLost(loss)) => {
                assert_eq!(loss.host, host);
                assert_eq!(loss.cause, LossCause::ConnectionLost);
            }
            other => panic!("expected HostLost, got {other:?}: {message}"),
        }
        assert!(message.contains(&host), "{message}");
    }
    for slave in &slaves {
        assert!(matches!(slave.end_reason(), Some(EndReason::HostLost(_))));
    }
    // The server noticed too: the slaves are gone.
    wait_all_gone(&pids).await;
    // A new spawn through the cut cable fails with a host error.
    let err = within(master.spawn(options)).await.unwrap_err();
    assert!(err.to_string().contains(&host), "{err}");
    assert!(
        matches!(
            err,
            MasterError::HostUnreachable { .. }
                | MasterError::HostNotListening { .. }
                | MasterError::HostLost { .. }
        ),
        "{err:?}"
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_fails_every_pending_request_with_host_lost() {
    let server = start(|b| b).await;
    let host = url(&server);
    let master = Master::new();
    let slaves = ready(&master, 3, remote(&server)).await;
    let pids: Vec<u32> = slaves.iter().filter_map(Slave::pid).collect();
    let pending: Vec<_> = slaves
        .iter()
        .map(|s| tokio::spawn(s.exec("sleep", &60_000u64).into_future()))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stop.shutdown();
    for request in pending {
        let result = tokio::time::timeout(Duration::from_secs(15), request)
            .await
            .expect("a pending request outlived its stopping host")
            .unwrap();
        let (end, message) = failure(result);
        match end {
            Some(EndReason::HostLost(loss)) => {
                assert_eq!(loss.host, host);
                assert_eq!(loss.cause, LossCause::ServerStopping);
            }
            other => panic!("expected HostLost, got {other:?}: {message}"),
        }
        assert!(message.contains(&host), "{message}");
    }
    within(server.task).await.unwrap().unwrap();
    wait_all_gone(&pids).await;
    let err = within(master.spawn(SpawnOptions::remote(&host, "slave.sh")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&host), "{err}");
    assert!(
        matches!(err, MasterError::HostNotListening { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_dying_mid_request_fails_its_requests_with_its_exit_status() {
    let server = start(|b| b).await;
    let master = Master::new();
    let slaves = ready(&master, 2, remote(&server)).await;
    let (dying, other) = (&slaves[0], &slaves[1]);
    let pid = dying.pid().unwrap();
    let long = tokio::spawn(dying.exec("sleep", &60_000u64).into_future());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (end, message) = failure(within(dying.exec("exit", &7i32)).await);
    let status = dying.exit_status().expect("an exit status");
    assert_eq!(status.code(), Some(7));
    assert_eq!(end, Some(EndReason::Exited(status)), "{message}");
    assert!(message.contains("code 7"), "{message}");
    let (end, _) = failure(
        tokio::time::timeout(Duration::from_secs(10), long)
            .await
            .expect("the other pending request failed at once")
            .unwrap(),
    );
    assert_eq!(end, Some(EndReason::Exited(status)));
    assert_eq!(dying.end_reason(), Some(EndReason::Exited(status)));
    assert!(wait_gone(pid).await);
    // The other slave on the session is unhurt.
    let echoed: String = within(other.exec("echo", &"fine"))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(echoed, "fine");
    // A task error is just an error response.
    let failed = within(other.exec("fail", &"on purpose")).await.unwrap();
    assert!(failed.error().unwrap().message.contains("on purpose"));
    assert!(failed.end_reason().is_none());
    within(master.close_all()).await.unwrap();
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_relayed_captured_and_a_flood_does_not_stall_others() {
    let server = start(|b| b).await;
    let master = Master::new();
    let captured = ready(&master, 1, remote(&server).output(Output::Capture)).await[0].clone();
    let lines = (vec!["out one", "out two"], vec!["err one"]);
    let n: usize = within(captured.exec("print", &lines))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(n, 3);
    let mut seen = None;
    for _ in 0..200 {
        let output = captured.captured_output().expect("captured");
        let out = String::from_utf8_lossy(&output.stdout).into_owned();
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        if out.contains("out one\nout two\n") && err.contains("err one\n") {
            seen = Some((out, err));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (out, err) = seen.expect("the output was relayed");
    assert!(!out.contains("err one") && !err.contains("out one"));

    // Prefixed output goes to this process's stdout; it must not disturb anything.
    let prefixed = ready(&master, 1, remote(&server).output(Output::Prefixed)).await[0].clone();
    within(prefixed.exec("print", &(vec!["prefixed line"], vec!["prefixed err"])))
        .await
        .unwrap()
        .value::<usize>()
        .unwrap();
    assert!(prefixed.captured_output().is_none());

    // One slave floods its output; another on the same session keeps answering.
    let flood = ready(&master, 1, remote(&server).output(Output::Capture)).await[0].clone();
    within(flood.exec("flood", &()))
        .await
        .unwrap()
        .value::<()>()
        .unwrap();
    let started = std::time::Instant::now();
    for i in 0..200u64 {
        let squared: u64 = within(captured.exec("square", &i))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(squared, i * i);
    }
    eprintln!("200 requests beside a flood: {:?}", started.elapsed());
    // The flood is bounded on the master's side too.
    let flooded = flood.captured_output().unwrap();
    assert!(!flooded.stdout.is_empty());
    assert!(flooded.stdout.len() <= distio_master::CAPTURE_LIMIT);
    let pids: Vec<u32> = [&captured, &prefixed, &flood]
        .iter()
        .filter_map(|s| s.pid())
        .collect();
    within(master.kill_all(Signal::KILL)).await.unwrap();
    wait_all_gone(&pids).await;
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_slaves_over_one_session() {
    const N: usize = 200;
    let server = start(|b| b.max_concurrent_slaves(N + 10)).await;
    let master = Master::new();
    let slaves = within_long(master.spawn_many(N, remote(&server).group("many")))
        .await
        .expect("200 remote slaves");
    assert_eq!(slaves.len(), N);
    let pids: Vec<u32> = slaves.iter().filter_map(Slave::pid).collect();
    assert_eq!(pids.len(), N);
    // One connection to the server for all of them.
    assert_eq!(tcp_connections_to(server.addr.port()), 1);
    let answers = within_long(master.tell(Target::group("many")).to("square", &9u64))
        .await
        .unwrap();
    assert_eq!(answers.values::<u64>().unwrap(), vec![81; N]);
    let mut ids: Vec<u64> = answers.iter().map(|r| r.slave_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N, "every slave answered");
    assert_eq!(tcp_connections_to(server.addr.port()), 1);
    within_long(master.close_all()).await.unwrap();
    for pid in &pids {
        assert!(wait_gone(*pid).await, "slave pid {pid} outlived close_all");
    }
    assert!(all_gone(&pids).is_empty());
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_gone_mid_request_ends_its_slaves_and_the_server_serves_on() {
    // No resume grace: a master gone ends its slaves at once.
    let server = start(|b| b.max_concurrent_slaves(3).resume_grace(Duration::ZERO)).await;
    let options = remote(&server);
    // A master in a runtime of its own, dropped mid-request (as when its process ends).
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let master = Master::new();
            let slaves = ready(&master, 3, options).await;
            for slave in &slaves {
                let exec = slave.exec("sleep", &60_000u64).into_future();
                tokio::spawn(exec);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(slaves.iter().filter_map(Slave::pid).collect::<Vec<_>>())
                .unwrap();
            // Leaves with the requests pending: the runtime is dropped with them.
            std::mem::forget(master);
            std::mem::forget(slaves);
        });
        drop(runtime);
    });
    let pids = rx.recv_timeout(Duration::from_secs(60)).expect("the pids");
    thread.join().unwrap();
    assert_eq!(pids.len(), 3);
    wait_all_gone(&pids).await;

    // All three places are free again for a new master.
    let master = Master::new();
    let slaves = ready(&master, 3, remote(&server)).await;
    let answers = within(slaves.exec("echo", &"again")).await.unwrap();
    assert_eq!(answers.values::<String>().unwrap(), vec!["again"; 3]);

    // Dropping every handle of a master (in this runtime) ends its slaves too.
    let pids: Vec<u32> = slaves.iter().filter_map(Slave::pid).collect();
    let pending: Vec<_> = slaves
        .iter()
        .map(|s| tokio::spawn(s.exec("sleep", &60_000u64).into_future()))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // (Responses hold their slave's handle too.)
    drop(answers);
    drop(slaves);
    drop(master);
    for request in pending {
        request.abort();
    }
    wait_all_gone(&pids).await;
    let master = Master::new();
    let again = ready(&master, 1, remote(&server)).await;
    within(again.close()).await.unwrap();
    stop(server).await;
}
