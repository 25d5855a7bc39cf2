//! A real slave program for the integration tests, and helpers.
//!
//! Each test binary is also the slave: `slave_options()` starts the running test
//! executable again with `--exact common::__distio_slave`, and that test serves the tasks
//! below when it finds it was launched as a slave (in a normal run it returns at once).

#![allow(dead_code, unreachable_pub)]

use distio_master::prelude::*;
use distio_master::{Master, Output, Slave, SpawnOptions};
use distio_slave::{SlaveProcess, TaskContext};
use std::future::IntoFuture;
use std::sync::Mutex;
use std::time::Duration;

/// Environment variable choosing how the test slave misbehaves.
pub const MODE_ENV: &str = "DISTIO_TEST_SLAVE_MODE";

/// Options that start the test slave.
pub fn slave_options() -> SpawnOptions {
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

/// Spawns a test slave and waits for its handshake.
pub async fn spawn_ready(master: &Master, options: SpawnOptions) -> Slave {
    let slave = within(master.spawn(options)).await.expect("spawn");
    within(slave.ready()).await.expect("handshake");
    slave
}

/// Runs `fut` to completion on a new current-thread runtime (the slave and master roles,
/// like most slave programs, use one thread).
pub fn block_on_one_thread<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
        .block_on(fut)
}

mod procs;
#[allow(unused_imports)]
pub use procs::{process_gone, wait_gone, within};

static RECORDED: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static BIG_SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

type R<T> = Result<T, distio_slave::TaskFailure>;

fn tasks() -> SlaveProcess {
    SlaveProcess::new()
        .task("echo", |s: String, _| async move { R::Ok(s) })
        .task("square", |n: u64, _| async move { R::Ok(n * n) })
        .task("add", |(a, b): (i64, i64), _| async move { R::Ok(a + b) })
        .task("whoami", |_: (), ctx: TaskContext| async move {
            R::Ok((ctx.slave().id(), ctx.slave().alias().to_owned()))
        })
        .task("sleep", |ms: u64, _| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            R::Ok(ms)
        })
        .task("fail", |message: String, _| async move {
            R::<()>::Err(distio_slave::TaskFailure::new(message))
        })
        .task("panic", |_: (), _| async move {
            if std::env::var_os("NEVER_SET_DISTIO").is_none() {
                panic!("deliberate panic");
            }
            R::Ok(())
        })
        .task("record", |n: u64, _| async move {
            RECORDED.lock().unwrap().push(n);
            R::Ok(())
        })
        .task("recorded", |_: (), _| async move {
            R::Ok(RECORDED.lock().unwrap().clone())
        })
        .task("pause_for", |ms: u64, ctx: TaskContext| async move {
            let slave = ctx.slave().clone();
            slave.pause();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                slave.resume();
            });
            R::Ok(())
        })
        .task(
            "emit",
            |(name, count): (String, u32), ctx: TaskContext| async move {
                for i in 0..count {
                    ctx.slave().emit(&name, &i)?;
                }
                R::Ok(count)
            },
        )
        .task("exit", |code: i32, _| async move {
            std::process::exit(code);
            #[allow(unreachable_code)]
            R::Ok(())
        })
        .task("meta", |_: (), ctx: TaskContext| async move {
            R::Ok((
                ctx.meta().timeout.map(|t| t.as_millis() as u64),
                ctx.meta().catch_all,
            ))
        })
        .task("cwd", |_: (), _| async move {
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .map_err(Into::into)
        })
        .task("print", |line: String, _| async move {
            println!("{line}");
            R::Ok(())
        })
        .task("spin", |ms: u64, _| async move {
            // Never yields: the slave's one runtime thread is busy, so it neither reads
            // nor answers, nor enforces timeouts, until this ends.
            let until = std::time::Instant::now() + Duration::from_millis(ms);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            R::Ok(ms)
        })
        .task("block", |ms: u64, _| async move {
            // Blocks the slave's one runtime thread: it stops reading its socket.
            std::thread::sleep(Duration::from_millis(ms));
            R::Ok(ms)
        })
        .task("big", |data: Vec<u8>, _| async move {
            BIG_SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            R::Ok(data.len())
        })
        .task("big_seen", |_: (), _| async move {
            R::Ok(BIG_SEEN.load(std::sync::atomic::Ordering::SeqCst))
        })
        .implement::<Sqrt, _, _>(|n, _| async move {
            if n < 0 {
                Err(SqrtError::Negative(n))
            } else {
                Ok((n as f64).sqrt() as u32)
            }
        })
        .on_close(|_| async {
            println!("close hook ran");
        })
}

/// A typed task the test slave implements: integer square root.
pub struct Sqrt;

/// How [`Sqrt`] fails.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SqrtError {
    /// The input was negative.
    Negative(i64),
}

impl distio_master::Task for Sqrt {
    const NAME: &'static str = "sqrt";
    type Input = i64;
    type Output = u32;
    type Error = SqrtError;
}

/// What a hand-written slave holds after taking its socket and the master's hello.
struct RawLink {
    frames:
        tokio_util::codec::FramedRead<tokio::net::unix::OwnedReadHalf, distio_proto::FrameCodec>,
    write: tokio::net::unix::OwnedWriteHalf,
    hello: distio_proto::Hello,
}

impl RawLink {
    /// Takes the inherited socket and reads the hello; `None` if the master sent none.
    async fn take() -> Option<RawLink> {
        use distio_proto::{Frame, FrameCodec};
        use futures_util::StreamExt;

        let fd: i32 = std::env::var(distio_proto::local::SLAVE_FD_ENV)
            .ok()?
            .parse()
            .ok()?;
        // SAFETY: the master passed this descriptor for this process alone and nothing
        // else in the process wraps it.
        #[allow(unsafe_code)]
        let std_stream =
            unsafe { <std::os::unix::net::UnixStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        std_stream.set_nonblocking(true).ok()?;
        let stream = tokio::net::UnixStream::from_std(std_stream).ok()?;
        let (r, write) = stream.into_split();
        let mut frames = tokio_util::codec::FramedRead::new(r, FrameCodec::new());
        let Some(Ok(Frame::Hello(hello))) = frames.next().await else {
            return None;
        };
        Some(RawLink {
            frames,
            write,
            hello,
        })
    }

    /// Answers the hello with a matching ready; returns the framed writer.
    async fn send_ready(
        write: tokio::net::unix::OwnedWriteHalf,
        hello: distio_proto::Hello,
    ) -> tokio_util::codec::FramedWrite<tokio::net::unix::OwnedWriteHalf, distio_proto::FrameCodec>
    {
        use distio_proto::{Frame, FrameCodec, Ready};
        use futures_util::SinkExt;

        let mut out = tokio_util::codec::FramedWrite::new(write, FrameCodec::new());
        let ready = Ready::new(
            std::process::id(),
            hello.identity.id,
            hello.identity.alias,
            vec![],
        );
        out.send(Frame::Ready(ready)).await.unwrap();
        out
    }
}

/// Speaks the handshake correctly, then answers the first request with bytes that are not
/// a frame (mode "garbage") or with a header announcing a 4 GiB frame (mode "oversize").
async fn misbehave(mode: &str) {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    let Some(RawLink {
        mut frames,
        write,
        hello,
    }) = RawLink::take().await
    else {
        return;
    };
    let out = RawLink::send_ready(write, hello).await;
    let _first_request = frames.next().await;
    let mut raw = out.into_inner();
    let bytes: &[u8] = match mode {
        "oversize" => &[0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        _ => &[0, 0, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0, 1],
    };
    raw.write_all(bytes).await.unwrap();
    // Linger: the master must close the link and kill us.
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// Never answers: with mode "silent" it takes the hello and never sends ready; with mode
/// "mute" it finishes the handshake, then reads requests and drops them.
async fn stay_quiet(mode: &str) {
    use futures_util::StreamExt;

    let Some(RawLink {
        mut frames,
        write,
        hello,
    }) = RawLink::take().await
    else {
        return;
    };
    if mode == "mute" {
        let _out = RawLink::send_ready(write, hello).await;
        // Read and drop everything until the master goes.
        while let Some(Ok(_)) = frames.next().await {}
    } else {
        // Keep the connection open, read nothing more, answer nothing.
        let _keep = (frames, write);
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}

/// Environment variable that makes `__distio_master` run as a master process.
pub const MASTER_ROLE_ENV: &str = "DISTIO_TEST_MASTER_ROLE";

/// Starts this test binary as a separate master process that spawns one slave, prints
/// `SLAVE_PID=<pid>` and then waits to be killed.
pub fn master_process() -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "common::__distio_master",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(MASTER_ROLE_ENV, "1")
        .stdout(std::process::Stdio::piped());
    command
}

#[test]
fn __distio_master() {
    let Some(role) = std::env::var_os(MASTER_ROLE_ENV) else {
        return;
    };
    if role != "1" {
        return master_role(&role.to_string_lossy());
    }
    block_on_one_thread(async {
        let master = Master::new();
        let slave = spawn_ready(&master, slave_options()).await;
        println!("SLAVE_PID={}", slave.pid().unwrap());
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

#[test]
fn __distio_slave() {
    if !distio_slave::launched_as_slave() {
        return;
    }
    // One thread: handlers start in the order requests arrive, so "record" sees that order.
    block_on_one_thread(async {
        match std::env::var(MODE_ENV).as_deref() {
            Ok(mode @ ("garbage" | "oversize")) => misbehave(mode).await,
            Ok(mode @ ("silent" | "mute")) => stay_quiet(mode).await,
            _ => process_tasks(tasks()).serve().await.expect("serve"),
        }
    });
}

// ----- For processes.rs: what slaves leave behind, and the output relay. -----

/// Environment variable naming the file the "stalled" master role writes once its runtime
/// has slept for a second.
pub const MARKER_ENV: &str = "DISTIO_TEST_MARKER";

/// Bytes in the line (without newline) the "long-line" master role's slave prints.
pub const LONG_LINE: usize = 10 * 1024 * 1024;

/// [`master_process`] in another role: "grandchildren" (prints `SLAVE_PID=`, `PLAIN_PID=`
/// and `SETSID_PID=` of a slave and the `sleep 1000`s it started), "long-line" (its slave
/// prints [`LONG_LINE`] bytes with no newline to the master's relay, then is closed) or
/// "stalled" (its slave floods the master's stdout, which the test never reads; after
/// sleeping a second the master sends the stuck slave a request with a 2 s timeout and
/// writes "<slave pid> <timed out?> <milliseconds it took>" to [`MARKER_ENV`]).
pub fn master_process_as(role: &str) -> std::process::Command {
    let mut command = master_process();
    command.env(MASTER_ROLE_ENV, role);
    command
}

fn master_role(role: &str) {
    block_on_one_thread(async {
        let master = Master::new();
        let relayed = slave_options().output(Output::Prefixed).alias("big");
        match role {
            "grandchildren" => {
                let slave = spawn_ready(&master, slave_options()).await;
                let plain: u32 = slave
                    .exec("start_sleep", &false)
                    .await
                    .unwrap()
                    .value()
                    .unwrap();
                let setsid: u32 = slave
                    .exec("start_sleep", &true)
                    .await
                    .unwrap()
                    .value()
                    .unwrap();
                let pid = slave.pid().unwrap();
                println!("SLAVE_PID={pid}\nPLAIN_PID={plain}\nSETSID_PID={setsid}");
            }
            "long-line" => {
                let slave = spawn_ready(&master, relayed).await;
                println!("SLAVE_PID={}", slave.pid().unwrap());
                slave
                    .exec("spew", &(LONG_LINE, 1usize, false))
                    .await
                    .unwrap();
                slave.close().await.unwrap();
            }
            "stalled" => {
                let slave = spawn_ready(&master, relayed).await;
                let flood = slave.exec("spew", &(1000usize, 100_000usize, true));
                tokio::spawn(flood.into_future());
                tokio::time::sleep(Duration::from_secs(1)).await;
                // The slave is stuck writing to its full pipe: a request's timeout must
                // still fire on this (current-thread) runtime's clock.
                let started = std::time::Instant::now();
                let late = slave
                    .exec("echo", &"anyone?".to_owned())
                    .timeout(Duration::from_secs(2))
                    .await
                    .unwrap();
                let fired = late
                    .error()
                    .is_some_and(|e| e.kind == distio_master::ErrorKind::TimedOut);
                let marker = std::env::var_os(MARKER_ENV).unwrap();
                let took = started.elapsed().as_millis();
                let pid = slave.pid().unwrap();
                std::fs::write(marker, format!("{pid} {fired} {took}")).unwrap();
            }
            other => panic!("unknown master role {other}"),
        }
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

/// "start_sleep" starts `sleep 1000` (behind `setsid` if asked) and returns its pid;
/// "spew" prints `count` runs of `len` bytes, each followed by a newline if asked.
fn process_tasks(slave: SlaveProcess) -> SlaveProcess {
    use std::process::{Command, Stdio};
    slave
        .task("start_sleep", |setsid: bool, _| async move {
            let mut command = Command::new(if setsid { "setsid" } else { "sleep" });
            if setsid {
                command.arg("sleep");
            }
            command
                .arg("1000")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            command.spawn().map(|child| child.id()).map_err(Into::into)
        })
        .task(
            "spew",
            |(len, count, newline): (usize, usize, bool), _| async move {
                use std::io::Write;
                let run = vec![b'x'; len];
                let mut out = std::io::stdout().lock();
                for _ in 0..count {
                    out.write_all(&run)?;
                    if newline {
                        out.write_all(b"\n")?;
                    }
                }
                Ok(out.flush()?)
            },
        )
}
