//! A real server on 127.0.0.1 port 0, real slave processes, and a raw session client.
//!
//! The test slave is the test binary itself, started again by the `slave.sh` wrapper in
//! each test's root with `--exact common::__distio_slave`; that test serves the tasks
//! below when it finds it was launched as a slave (in a normal run it returns at once).

#![allow(dead_code, unreachable_pub)]

pub mod proxy;

use bytes::{Bytes, BytesMut};
use distio_proto::remote::{
    Channel, ClientEvent, ClientSession, CloseReason, SessionCodec, Spawn, Spawned,
};
use distio_proto::{Frame, Hello, Metadata, Payload, Request, SlaveIdentity};
use distio_serve::{Server, ServerBuilder, ShutdownHandle};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type R<T> = Result<T, distio_slave::TaskFailure>;

#[test]
fn __distio_slave() {
    if !distio_slave::launched_as_slave() {
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            distio_slave::SlaveProcess::new()
                .task("echo", |s: String, _| async move { R::Ok(s) })
                .task("sleep", |ms: u64, _| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    R::Ok(ms)
                })
                .task("exit", |code: i32, _| async move {
                    std::process::exit(code);
                    #[allow(unreachable_code)]
                    R::Ok(())
                })
                .task("square", |n: u64, _| async move { R::Ok(n * n) })
                .task("count", |_: (), _| async move {
                    // How many times this slave ran `count`, this call included: a request
                    // lost or run twice shows as a gap or a repeat.
                    static COUNT: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(0);
                    R::Ok(COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
                })
                .task("fail", |why: String, _| async move {
                    R::<()>::Err(distio_slave::TaskFailure::new(why))
                })
                .task(
                    "print",
                    |(out, err): (Vec<String>, Vec<String>), _| async move {
                        use std::io::Write;
                        for line in &out {
                            println!("{line}");
                        }
                        let _ = std::io::stdout().flush();
                        for line in &err {
                            eprintln!("{line}");
                        }
                        R::Ok(out.len() + err.len())
                    },
                )
                .task("flood", |_: (), _| async move {
                    // Writes lines until the process ends, on a thread of its own (it
                    // blocks when the server's pipe is full).
                    std::thread::spawn(|| {
                        let mut i = 0u64;
                        loop {
                            println!("flood line {i} padding padding padding padding padding");
                            i += 1;
                        }
                    });
                    R::Ok(())
                })
                .task(
                    "emit",
                    |(name, n): (String, u32), ctx: distio_slave::TaskContext| async move {
                        for i in 0..n {
                            ctx.slave()
                                .emit_wait(&name, &i)
                                .await
                                .map_err(|e| distio_slave::TaskFailure::new(e.to_string()))?;
                        }
                        R::Ok(n)
                    },
                )
                .task(
                    "pause_for",
                    |ms: u64, ctx: distio_slave::TaskContext| async move {
                        let slave = ctx.slave().clone();
                        slave.pause();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            slave.resume();
                        });
                        R::Ok(())
                    },
                )
                .task(
                    "identity",
                    |_: (), ctx: distio_slave::TaskContext| async move {
                        let me = ctx.slave();
                        R::Ok((
                            me.id(),
                            me.alias().to_owned(),
                            me.server_id(),
                            me.remote_id(),
                            me.was_proxied(),
                        ))
                    },
                )
                .task(
                    "proxied",
                    |_: (), ctx: distio_slave::TaskContext| async move {
                        R::Ok((ctx.slave().server_id(), ctx.slave().was_proxied()))
                    },
                )
                .serve()
                .await
                .expect("serve")
        });
}

pub mod fleet;
pub mod netns;
pub mod placement;

#[path = "../../../distio-master/tests/common/procs.rs"]
mod procs;
#[allow(unused_imports)]
pub use procs::{process_gone, wait_gone, within};

fn write_script(root: &Path, name: &str, body: &str, mode: u32) {
    let path = root.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A fresh root with the test scripts.
pub fn make_root() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let root = std::env::temp_dir().join(format!(
        "distio-serve-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let exe = std::env::current_exe().unwrap();
    write_script(
        &root,
        "slave.sh",
        &format!(
            "exec '{}' common::__distio_slave --exact --nocapture --test-threads=1 -q\n",
            exe.display()
        ),
        0o644,
    );
    write_script(
        &root,
        "out.sh",
        "echo hello\necho oops >&2\nexit 3\n",
        0o644,
    );
    write_script(&root, "sleep.sh", "sleep 1000\n", 0o644);
    write_script(
        &root,
        "stubborn.sh",
        "trap '' TERM\nwhile :; do sleep 1; done\n",
        0o644,
    );
    write_script(&root, "marker.sh", "touch \"$1\"\nsleep 1000\n", 0o644);
    write_script(
        &root,
        "spam.sh",
        "i=0\nwhile :; do echo \"line $i padding padding padding padding\"; i=$((i+1)); done\n",
        0o644,
    );
    write_script(&root, "run", "#!/bin/sh\necho direct\n", 0o755);
    write_script(&root, "plain.txt", "not a script\n", 0o644);
    let _ = std::os::unix::fs::symlink("/bin/sh", root.join("escape"));
    root
}

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub stop: ShutdownHandle,
    pub task: tokio::task::JoinHandle<Result<(), distio_serve::ServeError>>,
}

/// The containment of the tests' servers: the tests run as root, and the containment tests
/// set their own user.
pub fn root_slaves_allowed() -> distio_serve::Containment {
    distio_serve::Containment {
        allow_root_slaves: true,
        ..distio_serve::Containment::default()
    }
}

/// The `distio-serve` binary as the tests run it: no `DISTIO_SERVE_…` variables of the
/// caller, no admin listener or control socket (tests run in parallel; a test that wants
/// them sets its own), and slaves allowed to run as root (the tests run as root).
#[allow(dead_code)]
pub fn serve_binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_distio-serve"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DISTIO_SERVE_") {
            command.env_remove(key);
        }
    }
    command
        .env("DISTIO_SERVE_ADMIN_PORT", "0")
        .env("DISTIO_SERVE_CONTROL_SOCKET", "off")
        .env("DISTIO_SERVE_CONTAINMENT__ALLOW_ROOT_SLAVES", "true");
    command
}

/// A `distio-serve` process started by [`spawn_serve`]: SIGKILLed and reaped when dropped
/// unless the test waited for it, so a failed assertion leaves no server behind.
#[allow(dead_code)]
pub struct ServeChild {
    /// The process (take it to wait for its exit).
    pub child: Option<std::process::Child>,
    /// The address from its `listening on` line.
    pub addr: std::net::SocketAddr,
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `command` (from [`serve_binary`]) with its stdout piped and reads the address from
/// its first line.
#[allow(dead_code)]
pub fn spawn_serve(command: &mut std::process::Command) -> ServeChild {
    use std::io::BufRead;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start distio-serve");
    let mut line = String::new();
    let read =
        std::io::BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
    let mut started = ServeChild {
        child: Some(child),
        addr: ([0, 0, 0, 0], 0).into(),
    };
    read.expect("the listening line");
    started.addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("a listening line, not {line:?}"))
        .parse()
        .expect("an address");
    started
}

/// Starts a server on 127.0.0.1:0 with a fresh root, `.sh` run by `/bin/sh`, short
/// heartbeats and graces, and `configure` applied last.
pub async fn start(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> TestServer {
    let root = make_root();
    let builder = Server::builder()
        .port(0)
        .root(&root)
        .interpreter("sh", "/bin/sh")
        .kill_grace(Duration::from_millis(500))
        .shutdown_grace(Duration::from_secs(5))
        .heartbeat(Duration::from_secs(2), 5)
        // A dropped connection ends its session at once, as most tests expect; the resume
        // tests set a grace of their own.
        .resume_grace(Duration::ZERO)
        .containment(root_slaves_allowed());
    let server = configure(builder).build().await.expect("server starts");
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let task = tokio::spawn(server.run());
    TestServer {
        addr,
        root,
        stop,
        task,
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw session client.
pub struct Client {
    pub ws: Ws,
    pub session: ClientSession,
}

impl Client {
    /// Connects without opening the session.
    pub async fn connect_raw(addr: SocketAddr) -> Ws {
        let (ws, _) = within(tokio_tungstenite::connect_async(format!(
            "ws://{addr}/session"
        )))
        .await
        .expect("connect");
        ws
    }

    /// Connects and opens the session.
    pub async fn connect(addr: SocketAddr) -> Client {
        Self::open_on(Self::connect_raw(addr).await).await
    }

    /// Opens the session on an upgraded connection.
    pub async fn open_on(ws: Ws) -> Client {
        let mut client = Client {
            ws,
            session: ClientSession::new(SessionCodec::new()),
        };
        let open = client.session.open("test").unwrap();
        client.send(open).await;
        match client.event().await {
            ClientEvent::Welcomed(welcome) => assert!(welcome.capacity >= 1),
            other => panic!("expected a welcome, got {other:?}"),
        }
        client
    }

    pub async fn send(&mut self, message: Bytes) {
        within(self.ws.send(Message::Binary(message)))
            .await
            .expect("send");
    }

    /// The next session message, as the client session sees it.
    pub async fn event(&mut self) -> ClientEvent {
        loop {
            let message = within(self.ws.next())
                .await
                .expect("the server closed the connection")
                .expect("websocket error");
            if let Message::Binary(bytes) = message {
                match self.session.receive(&bytes).expect("a valid message") {
                    // The server's load reports come after the welcome and at every
                    // heartbeat; no test waits for one.
                    ClientEvent::Status(_) => continue,
                    event => return event,
                }
            }
        }
    }

    /// The next event about `channel` (output skipped unless `keep_output`).
    pub async fn event_on(&mut self, channel: Channel) -> ClientEvent {
        loop {
            let event = self.event().await;
            let on = match &event {
                ClientEvent::Spawned(s) => s.channel,
                ClientEvent::SpawnFailed(s) => s.channel,
                ClientEvent::Routed { channel, .. } => *channel,
                ClientEvent::Exited(e) => e.channel,
                ClientEvent::Closing(_) => return event,
                _ => continue,
            };
            if on == channel {
                return event;
            }
        }
    }

    pub async fn spawn(&mut self, script: &str, args: &[&str]) -> Channel {
        let mut spawn = Spawn::new(0, 1, script);
        spawn.args = args.iter().map(|a| a.to_string()).collect();
        let (channel, message) = self.session.spawn(spawn).unwrap();
        self.send(message).await;
        channel
    }

    pub async fn spawned(&mut self, channel: Channel) -> Spawned {
        match self.event_on(channel).await {
            ClientEvent::Spawned(spawned) => spawned,
            other => panic!("expected spawned on {channel}, got {other:?}"),
        }
    }

    /// Sends a slave frame on `channel`.
    pub async fn route(&mut self, channel: Channel, frame: &Frame) {
        let mut buf = BytesMut::new();
        self.session
            .codec()
            .encode_routed(channel, frame, &mut buf)
            .unwrap();
        self.send(buf.freeze()).await;
    }

    /// The next slave frame on `channel`.
    pub async fn routed(&mut self, channel: Channel) -> Frame {
        match self.event_on(channel).await {
            ClientEvent::Routed { body, .. } => self
                .session
                .codec()
                .frame_codec()
                .decode_body(&body)
                .unwrap(),
            other => panic!("expected a slave frame on {channel}, got {other:?}"),
        }
    }

    /// Spawns the test slave and does its handshake.
    pub async fn ready_slave(&mut self) -> (Channel, Spawned) {
        let channel = self.spawn("slave.sh", &[]).await;
        let spawned = self.spawned(channel).await;
        let identity = SlaveIdentity {
            id: 1,
            alias: "remote".into(),
            server_id: Some(spawned.server_id),
            remote_id: Some(1),
        };
        self.route(channel, &Frame::Hello(Hello::new(identity)))
            .await;
        match self.routed(channel).await {
            Frame::Ready(ready) => assert_eq!(ready.pid, spawned.pid),
            other => panic!("expected ready, got {other:?}"),
        }
        (channel, spawned)
    }

    /// Sends a request on `channel`.
    pub async fn request<T: serde::Serialize>(
        &mut self,
        channel: Channel,
        id: u64,
        task: &str,
        input: &T,
    ) {
        let request = Request {
            id,
            task: task.into(),
            payload: Payload::encode(input).unwrap(),
            meta: Metadata::new(),
        };
        self.route(channel, &Frame::Request(request)).await;
    }

    pub async fn kill(&mut self, channel: Channel, signal: i32) {
        if let Some(message) = self.session.kill(channel, signal).unwrap() {
            self.send(message).await;
        }
    }

    pub async fn close(mut self) {
        let message = self.session.close(CloseReason::Done, "bye").unwrap();
        self.send(message).await;
        let _ = self.ws.close(None).await;
    }
}

/// How many established TCP connections have `port` as their local port (connections
/// accepted by a server on it), from /proc/net/tcp and /proc/net/tcp6.
pub fn tcp_connections_to(port: u16) -> usize {
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            // 01: ESTABLISHED.
            if local_port == Some(port) && *state == "01" {
                count += 1;
            }
        }
    }
    count
}
