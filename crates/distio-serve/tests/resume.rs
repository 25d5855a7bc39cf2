//! Resuming a session whose link dropped: the real master, the real server, real slaves,
//! and a proxy between them that cuts or stalls the link.

mod common;

use common::proxy::Proxy;
use common::{Client, Ws, process_gone, start, wait_gone, within};
use distio_master::prelude::*;
use distio_master::{LinkSettings, Master, MasterError, Output, SpawnOptions};
use distio_proto::Frame;
use distio_proto::remote::{
    ClientEvent, ClientSession, CloseReason, ReceiveCounter, Resume, ResumeToken, SessionCodec,
    SessionFrame, Welcome,
};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn link(window: Duration) -> LinkSettings {
    LinkSettings {
        heartbeat_interval: Duration::from_millis(300),
        heartbeat_misses: 3,
        resume_window: window,
    }
}

fn options(proxy: &Proxy, window: Duration) -> SpawnOptions {
    SpawnOptions::remote(format!("ws://{}", proxy.addr), "slave.sh")
        .output(Output::Null)
        .link(link(window))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_bounces_through_twenty_drops_without_loss_duplication_or_reordering() {
    let server = start(|b| {
        b.heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(30))
    })
    .await;
    let proxy = Proxy::start(server.addr).await;
    let master = Master::new();
    let slave = within(master.spawn(options(&proxy, Duration::from_secs(30))))
        .await
        .expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let mut drops = 0;
    for round in 0..100u64 {
        if round % 5 == 2 && drops < 20 {
            if drops % 2 == 0 {
                proxy.cut();
            } else {
                proxy.blackhole();
            }
            drops += 1;
            let proxy_restore = async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                proxy.restore();
            };
            let bounce = slave.exec("echo", &format!("n{round}"));
            let (answer, ()) = tokio::join!(
                tokio::time::timeout(Duration::from_secs(60), bounce),
                proxy_restore
            );
            let answer: String = answer
                .expect("no answer across a drop within 60 s")
                .expect("request")
                .value()
                .expect("a string");
            assert_eq!(answer, format!("n{round}"));
            continue;
        }
        let answer: String = within(slave.exec("echo", &format!("n{round}")))
            .await
            .expect("request")
            .value()
            .expect("a string");
        assert_eq!(answer, format!("n{round}"), "round {round}");
    }
    assert_eq!(drops, 20);
    drop(master);
    server.stop.shutdown();
    let _ = within(server.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_longer_than_the_grace_ends_the_slaves_and_fails_the_requests() {
    let server = start(|b| {
        b.heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(2))
    })
    .await;
    let proxy = Proxy::start(server.addr).await;
    let master = Master::new();
    let slave = within(master.spawn(options(&proxy, Duration::from_secs(8))))
        .await
        .expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let pid = slave.pid().expect("a pid");
    proxy.cut();
    let pending = slave.exec("sleep", &100u64);
    // The server gives up after its grace: the slave is gone by pid.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !process_gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slave {pid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.restore();
    let failed = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("the pending request ends");
    let message = match failed {
        Ok(response) => response
            .error()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| panic!("the request succeeded: {response:?}")),
        Err(MasterError::Task { error, .. }) => error.message,
        Err(other) => other.to_string(),
    };
    assert!(message.contains(&proxy.addr.to_string()), "{message}");
    drop(master);
    server.stop.shutdown();
    let _ = within(server.task).await;
}

/// The message of a request that failed (as a response error, a task error or a master
/// error); panics if it succeeded.
fn failure_message<T: std::fmt::Debug>(
    result: Result<T, MasterError>,
    error: impl FnOnce(&T) -> Option<String>,
) -> String {
    match result {
        Ok(response) => {
            error(&response).unwrap_or_else(|| panic!("the request succeeded: {response:?}"))
        }
        Err(MasterError::Task { error, .. }) => error.message,
        Err(other) => other.to_string(),
    }
}

/// Opens a raw session on `ws`: the client, the welcome, and the session's resume token.
async fn open_raw(ws: Ws) -> (Client, Welcome, ResumeToken) {
    let mut client = Client {
        ws,
        session: ClientSession::new(SessionCodec::new()),
    };
    let open = client.session.open("resume-test").expect("open");
    client.send(open).await;
    let welcome = match client.event().await {
        ClientEvent::Welcomed(welcome) => welcome,
        other => panic!("expected a welcome, got {other:?}"),
    };
    let token = loop {
        match client.event().await {
            ClientEvent::ResumeToken(token) => break token,
            ClientEvent::Status(_) => {}
            other => panic!("expected a resume token, got {other:?}"),
        }
    };
    (client, welcome, token)
}

/// Sends a resume as the first frame of `ws`; the server's answer.
async fn resume_raw(mut ws: Ws, token: &ResumeToken, instance: u64) -> SessionFrame {
    let codec = SessionCodec::new();
    let resume = codec
        .encode(&SessionFrame::Resume(Resume::new(token.token, instance, 0)))
        .expect("encode");
    within(ws.send(Message::Binary(resume)))
        .await
        .expect("send");
    loop {
        let message = within(ws.next())
            .await
            .expect("an answer before the connection closed")
            .expect("a message");
        if let Message::Binary(bytes) = message {
            return codec.decode(&bytes).expect("a valid frame");
        }
    }
}

/// Presents `token` for `instance` as the first frame of `ws`: why the server refused it
/// (panics if it did not).
async fn refused_resume(ws: Ws, token: &ResumeToken, instance: u64) -> String {
    refusal(resume_raw(ws, token, instance).await)
}

/// The message of a resume refusal; panics on any other answer.
fn refusal(answer: SessionFrame) -> String {
    match answer {
        SessionFrame::Closing(closing) if closing.reason == CloseReason::ResumeRefused => {
            closing.message
        }
        other => panic!("expected the resume to be refused, got {other:?}"),
    }
}

/// How many slaves the server at `addr` runs (all sessions), from a new session's welcome.
async fn running_slaves(addr: SocketAddr) -> u32 {
    let (client, welcome, _) = open_raw(Client::connect_raw(addr).await).await;
    client.close().await;
    welcome.running
}

/// Echoes `text` through the slave of `channel`.
async fn echo(client: &mut Client, channel: u32, id: u64, text: &str) -> String {
    client.request(channel, id, "echo", &text).await;
    match client.routed(channel).await {
        Frame::Response(response) => response
            .outcome
            .expect("a value")
            .decode()
            .expect("a string"),
        other => panic!("expected a response, got {other:?}"),
    }
}

const USERS: [(&str, &str); 2] = [("alice", "pw-alice"), ("bob", "pw-bob")];

/// A test server's authentication: two users, by basic authentication.
async fn two_users(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let user = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| distio_serve::auth::parse_basic_authorization(value.as_bytes()).ok())
        .and_then(|(user, password)| {
            USERS
                .iter()
                .find(|(u, p)| u.as_bytes() == user && p.as_bytes() == password)
        });
    match user {
        Some((user, _)) => {
            request
                .extensions_mut()
                .insert(distio_serve::AuthenticatedUser((*user).to_owned()));
            next.run(request).await
        }
        None => axum::http::StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// Connects to `addr` as `user` of [`USERS`].
async fn connect_as(addr: SocketAddr, user: &str) -> Ws {
    use base64::Engine;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (_, password) = USERS.iter().find(|(u, _)| *u == user).expect("a user");
    let mut request = format!("ws://{addr}/session")
        .into_client_request()
        .expect("a request");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    request.headers_mut().insert(
        axum::http::header::AUTHORIZATION,
        format!("Basic {basic}").parse().expect("a header"),
    );
    let (ws, _) = within(tokio_tungstenite::connect_async(request))
        .await
        .expect("connect");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_presented_under_other_credentials_is_refused_and_its_session_carries_on() {
    let server = start(|b| {
        b.resume_grace(Duration::from_secs(30))
            .map_router(|router| router.layer(axum::middleware::from_fn(two_users)))
    })
    .await;
    let (mut alice, welcome, token) = open_raw(connect_as(server.addr, "alice").await).await;
    let (channel, spawned) = alice.ready_slave().await;
    assert_eq!(echo(&mut alice, channel, 1, "before").await, "before");

    let message = refused_resume(
        connect_as(server.addr, "bob").await,
        &token,
        welcome.instance,
    )
    .await;
    assert!(message.contains("another user"), "{message}");

    // Alice's session and slave are untouched.
    assert!(!process_gone(spawned.pid), "alice's slave was ended");
    assert_eq!(echo(&mut alice, channel, 2, "after").await, "after");
    alice.close().await;
    assert!(
        wait_gone(spawned.pid).await,
        "slave {} outlived its session",
        spawned.pid
    );
    server.stop.shutdown();
    let _ = within(server.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_against_another_server_instance_is_refused() {
    let first = start(|b| b.resume_grace(Duration::from_secs(30))).await;
    let second = start(|b| b.resume_grace(Duration::from_secs(30))).await;
    let (mut client, welcome, token) = open_raw(Client::connect_raw(first.addr).await).await;
    let (_, spawned) = client.ready_slave().await;

    // The first server's token and instance, presented to the second.
    let message = refused_resume(
        Client::connect_raw(second.addr).await,
        &token,
        welcome.instance,
    )
    .await;
    assert!(message.contains("another instance"), "{message}");
    // With the second's own instance the token is still unknown there.
    let (probe, other, _) = open_raw(Client::connect_raw(second.addr).await).await;
    probe.close().await;
    assert_ne!(other.instance, welcome.instance);
    let message = refused_resume(
        Client::connect_raw(second.addr).await,
        &token,
        other.instance,
    )
    .await;
    assert!(message.contains("unknown or expired"), "{message}");
    assert_eq!(running_slaves(second.addr).await, 0);

    assert!(!process_gone(spawned.pid));
    client.close().await;
    assert!(wait_gone(spawned.pid).await);
    for server in [first, second] {
        server.stop.shutdown();
        let _ = within(server.task).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_server_restarted_fails_its_requests_naming_the_host_and_gets_no_slave_back()
{
    let first = start(|b| {
        b.heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(30))
    })
    .await;
    let port = first.addr.port();
    let proxy = Proxy::start(first.addr).await;
    let master = Master::new();
    let slave = within(master.spawn(options(&proxy, Duration::from_secs(30))))
        .await
        .expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let pid = slave.pid().expect("a pid");

    proxy.cut();
    let pending = slave.exec("sleep", &100_000u64);
    // The server restarts: a new instance on the same port.
    first.stop.shutdown();
    let _ = within(first.task).await;
    assert!(wait_gone(pid).await, "slave {pid} outlived its server");
    let second = start(|b| {
        b.port(port)
            .heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(30))
    })
    .await;
    assert_eq!(second.addr, first.addr);
    proxy.restore();

    let failed = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("the pending request ends");
    let message = failure_message(failed, |r| r.error().map(|e| e.message.clone()));
    assert!(message.contains(&proxy.addr.to_string()), "{message}");
    assert!(message.contains("resume"), "{message}");
    // The old slave does not come back: it fails at once, and the new server runs nothing.
    let again = within(slave.exec("echo", &"x")).await;
    assert!(
        again.is_err() || again.as_ref().is_ok_and(|r| r.error().is_some()),
        "{again:?}"
    );
    assert_eq!(running_slaves(second.addr).await, 0);
    drop(master);
    second.stop.shutdown();
    let _ = within(second.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_of_a_session_the_master_closed_is_refused_and_revives_no_slave() {
    let server = start(|b| b.resume_grace(Duration::from_secs(30))).await;
    let (mut client, welcome, token) = open_raw(Client::connect_raw(server.addr).await).await;
    let (_, spawned) = client.ready_slave().await;
    client.close().await;
    assert!(
        wait_gone(spawned.pid).await,
        "slave {} outlived its session",
        spawned.pid
    );

    let message = refused_resume(
        Client::connect_raw(server.addr).await,
        &token,
        welcome.instance,
    )
    .await;
    assert!(message.contains("unknown or expired"), "{message}");
    assert_eq!(running_slaves(server.addr).await, 0);
    server.stop.shutdown();
    let _ = within(server.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_of_a_session_whose_grace_passed_is_refused_and_revives_no_slave() {
    let server = start(|b| {
        b.heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(1))
    })
    .await;
    let (mut client, welcome, token) = open_raw(Client::connect_raw(server.addr).await).await;
    let (_, spawned) = client.ready_slave().await;
    // The link drops without a closing: the session is parked for its grace, then ends.
    drop(client);
    assert!(
        wait_gone(spawned.pid).await,
        "slave {} outlived the grace",
        spawned.pid
    );

    let message = refused_resume(
        Client::connect_raw(server.addr).await,
        &token,
        welcome.instance,
    )
    .await;
    assert!(message.contains("unknown or expired"), "{message}");
    assert_eq!(running_slaves(server.addr).await, 0);
    server.stop.shutdown();
    let _ = within(server.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_never_acknowledges_has_its_session_ended_before_the_replay_buffer_overflows()
{
    let server = start(|b| {
        b.heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(30))
            .resume_buffer(64 * 1024)
    })
    .await;
    let (mut silent, _, _) = open_raw(Client::connect_raw(server.addr).await).await;
    let (channel, spawned) = silent.ready_slave().await;
    // The slave writes output lines without end; the client reads them all and never
    // acknowledges one.
    silent.request(channel, 1, "flood", &()).await;
    let codec = SessionCodec::new();
    let mut bytes = 0usize;
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match silent.ws.next().await {
                Some(Ok(Message::Binary(message))) => {
                    bytes += message.len();
                    if let Ok(SessionFrame::Closing(closing)) = codec.decode(&message) {
                        break Some(closing);
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => {
                    eprintln!("the connection ended without a closing: {other:?}");
                    break None;
                }
            }
        }
    })
    .await
    .expect("the session ends");
    let closing = ended.expect("a closing before the connection ends");
    assert_eq!(
        closing.reason,
        CloseReason::ProtocolViolation,
        "{closing:?}"
    );
    assert!(
        closing.message.contains("acknowledged too slowly"),
        "{closing:?}"
    );
    eprintln!("the silent client read {bytes} bytes before the closing");
    assert!(
        wait_gone(spawned.pid).await,
        "slave {} outlived its session",
        spawned.pid
    );

    // The server serves other sessions as before.
    let (mut other, _, _) = open_raw(Client::connect_raw(server.addr).await).await;
    let (channel, spawned) = other.ready_slave().await;
    assert_eq!(echo(&mut other, channel, 1, "alive").await, "alive");
    other.close().await;
    assert!(wait_gone(spawned.pid).await);
    server.stop.shutdown();
    let _ = within(server.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_works_in_passphrase_mode_across_cuts() {
    const PASSPHRASE: &str = "correct horse battery staple";
    let server = start(|b| {
        b.heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(30))
            .passphrase(PASSPHRASE)
    })
    .await;
    let proxy = Proxy::start(server.addr).await;
    let master = Master::new();
    let slave =
        within(master.spawn(options(&proxy, Duration::from_secs(30)).passphrase(PASSPHRASE)))
            .await
            .expect("spawn");
    within(slave.ready()).await.expect("handshake");
    let pid = slave.pid().expect("a pid");
    let mut cuts = 0;
    for round in 0..20u64 {
        let bounce = slave.exec("square", &round);
        let answer = if round % 6 == 3 {
            cuts += 1;
            proxy.cut();
            let restore = async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                proxy.restore();
            };
            let (answer, ()) = tokio::join!(
                tokio::time::timeout(Duration::from_secs(60), bounce),
                restore
            );
            answer.expect("an answer across a cut within 60 s")
        } else {
            within(bounce).await
        };
        let squared: u64 = answer.expect("request").value().expect("a number");
        assert_eq!(squared, round * round, "round {round}");
    }
    assert_eq!(cuts, 3);
    // The same slave all along.
    assert_eq!(slave.pid(), Some(pid));
    drop(master);
    server.stop.shutdown();
    let _ = within(server.task).await;
    assert!(wait_gone(pid).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_acknowledges_keeps_its_session_with_a_replay_buffer_smaller_than_the_socket_buffer()
 {
    let server = start(|b| {
        b.heartbeat(Duration::from_millis(300), 3)
            .resume_grace(Duration::from_secs(30))
            .resume_buffer(64 * 1024)
    })
    .await;
    let (mut client, _, _) = open_raw(Client::connect_raw(server.addr).await).await;
    let (channel, spawned) = client.ready_slave().await;
    client.request(channel, 1, "flood", &()).await;
    let codec = SessionCodec::new();
    // The frames of the handshake above go uncounted: the acks stay below the truth,
    // which keeps a few more frames on the server and is harmless.
    let mut received = ReceiveCounter::default();
    let mut bytes = 0usize;
    let mut asked = false;
    const FLOWED: usize = 16 * 64 * 1024;
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if !asked && bytes > FLOWED {
                // Sixteen times the replay buffer went through.
                asked = true;
                client.request(channel, 2, "echo", &"still here").await;
            }
            let message = match client.ws.next().await {
                Some(Ok(Message::Binary(message))) => message,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("the session ended after {bytes} bytes: {other:?}"),
            };
            bytes += message.len();
            if SessionFrame::is_counted(&message)
                && let Some(count) = received.count(message.len())
            {
                let ack = client.session.ack(count).expect("an ack");
                client.send(ack).await;
            }
            match codec.decode(&message).expect("a valid frame") {
                SessionFrame::Closing(closing) => {
                    panic!("the server closed the session after {bytes} bytes: {closing:?}")
                }
                SessionFrame::Routed { body, .. } => {
                    if let Frame::Response(response) =
                        codec.frame_codec().decode_body(&body).expect("a frame")
                        && response.request == 2
                    {
                        return response;
                    }
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the echo is answered");
    let echoed: String = answer.outcome.expect("a value").decode().expect("a string");
    assert_eq!(echoed, "still here");
    // Closes reading on: a socket closed with output unread is reset, and a reset can
    // take the closing with it (the server would see a drop and keep the slave for its
    // grace).
    let bye = client
        .session
        .close(CloseReason::Done, "bye")
        .expect("a closing");
    client.send(bye).await;
    within(async {
        while let Some(Ok(message)) = client.ws.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(wait_gone(spawned.pid).await);
    server.stop.shutdown();
    let _ = within(server.task).await;
}

/// The next binary message of a server-side WebSocket (`None` once it ends).
async fn next_binary(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Option<bytes::Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => return Some(bytes),
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

/// A fake server for the master's own instance check: it welcomes the session as instance
/// 1, starts its slave, drops the link, and answers the resume as instance 2.
async fn impostor(listener: tokio::net::TcpListener) {
    use distio_proto::remote::{ServerEvent, ServerSession, Spawned};
    let codec = SessionCodec::new();
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
    let mut session = ServerSession::new(codec, 16);
    let open = next_binary(&mut ws).await.expect("open");
    assert!(matches!(session.receive(&open), Ok(ServerEvent::Opened(_))));
    for message in [
        session.welcome(&Welcome::new("impostor", 1, 8)),
        session.resume_token(&ResumeToken {
            token: [9; 32],
            grace_ms: 30_000,
        }),
    ] {
        ws.send(Message::Binary(message.expect("encode")))
            .await
            .expect("send");
    }
    let spawn = next_binary(&mut ws).await.expect("spawn");
    let Ok(ServerEvent::Spawn(spawn)) = session.receive(&spawn) else {
        panic!("expected a spawn");
    };
    let spawned = session.spawned(Spawned {
        channel: spawn.channel,
        pid: 4242,
        server_id: 1,
    });
    ws.send(Message::Binary(spawned.expect("encode")))
        .await
        .expect("send");
    // Whatever the master sends next (the slave's hello), the link drops.
    let _ = next_binary(&mut ws).await;
    drop(ws);
    let (tcp, _) = listener.accept().await.expect("accept the resume");
    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
    let resume = next_binary(&mut ws).await.expect("resume");
    let Ok(SessionFrame::Resume(resume)) = codec.decode(&resume) else {
        panic!("expected a resume");
    };
    assert_eq!((resume.token, resume.instance), ([9; 32], 1));
    let resumed = codec.encode(&SessionFrame::Resumed(distio_proto::remote::Resumed {
        instance: 2,
        received: 0,
    }));
    let _ = ws.send(Message::Binary(resumed.expect("encode"))).await;
    // Held open until the master gives up on it.
    while next_binary(&mut ws).await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_refuses_a_resume_answered_by_another_server_instance() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    let fake = tokio::spawn(impostor(listener));
    let master = Master::new();
    let options = SpawnOptions::remote(format!("ws://{addr}"), "slave.sh")
        .output(Output::Null)
        .link(link(Duration::from_secs(30)));
    // The slave's handshake is under way when the link drops: its wait fails with the
    // loss, naming the host.
    let err = within(master.spawn(options)).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains("another server instance"), "{message}");
    drop(master);
    let _ = within(fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_dropped_with_live_slaves_ends_them_at_once_not_after_the_grace() {
    // A grace far longer than the wait below: the slave must end because the master
    // closed its WebSocket on purpose, not because the grace ran out.
    let server = start(|b| b.resume_grace(Duration::from_secs(300))).await;
    let master = Master::new();
    let slave = within(master.spawn(
        SpawnOptions::remote(format!("ws://{}", server.addr), "slave.sh").output(Output::Null),
    ))
    .await
    .unwrap();
    let pid = slave.pid().expect("a remote pid");
    drop(slave);
    drop(master);
    // wait_gone gives it 20 s.
    assert!(
        wait_gone(pid).await,
        "slave {pid} outlived its dropped master"
    );
    server.stop.shutdown();
    let _ = within(server.task).await;
}
