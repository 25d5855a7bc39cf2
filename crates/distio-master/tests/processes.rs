//! What local slave processes are tied to, and what they leave behind, with real
//! processes: a slave lives exactly as long as its master process (not the thread that
//! spawned it), the processes it starts in its group end with it, and its output relay
//! never stalls the master.

mod common;

use common::{
    LONG_LINE, MARKER_ENV, block_on_one_thread, master_process_as, process_gone, slave_options,
    spawn_ready, wait_gone, within,
};
use distio_master::prelude::*;
use distio_master::{LINE_LIMIT, Master, Signal, Slave};
use std::io::BufRead;
use std::time::Duration;

/// SIGKILLs the processes it lists when dropped, so a failing test leaves none behind.
#[derive(Default)]
struct Reap(Vec<u32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for pid in &self.0 {
            kill_9(*pid);
        }
    }
}

fn kill_9(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'.
        let ppid = stat.rsplit(')').next().and_then(|rest| {
            rest.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
        });
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// Reads `KEY=value` lines from a master process until every key has been seen.
fn read_pids(lines: &mut impl Iterator<Item = std::io::Result<String>>, keys: &[&str]) -> Vec<u32> {
    let mut found = vec![None; keys.len()];
    while found.iter().any(Option::is_none) {
        let line = lines.next().expect("the master printed its pids").unwrap();
        for (key, slot) in keys.iter().zip(&mut found) {
            if let Some(pid) = line.strip_prefix(&format!("{key}=")) {
                *slot = Some(pid.trim().parse().unwrap());
            }
        }
    }
    found.into_iter().map(Option::unwrap).collect()
}

// ----- A: a slave lives as long as its master process, not the spawning thread -----

#[test]
fn a_slave_outlives_the_thread_that_spawned_it() {
    let (runtime, master, slave) = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let master = Master::new();
        let slave = runtime.block_on(spawn_ready(&master, slave_options()));
        (runtime, master, slave)
    })
    .join()
    .unwrap();
    let pid = slave.pid().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !process_gone(pid),
        "slave {pid} died with its spawning thread"
    );
    runtime.block_on(async {
        let nine: u64 = within(slave.exec("square", &3u64))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(nine, 9);
        within(slave.close()).await.unwrap();
    });
    drop(master);
}

#[test]
fn a_slave_outlives_the_blocking_thread_that_spawned_it() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(100))
        .enable_all()
        .build()
        .unwrap();
    let master = Master::new();
    let spawning = master.clone();
    let slave = runtime.block_on(async move {
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Handle::current().block_on(spawn_ready(&spawning, slave_options()))
        })
        .await
        .unwrap()
    });
    let pid = slave.pid().unwrap();
    // Far past the keep-alive: the blocking thread that spawned the slave has retired.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !process_gone(pid),
        "slave {pid} died with the retired blocking thread"
    );
    runtime.block_on(async {
        let four: u64 = within(slave.exec("square", &2u64))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(four, 4);
        within(slave.close()).await.unwrap();
    });
}

// ----- B: what a slave leaves behind -----

/// Has `slave` start a plain `sleep 1000` and one behind `setsid`; returns the plain one's
/// pid and a guard that kills both (the `setsid` one left the slave's process group, so
/// nothing in distio ends it).
async fn start_sleeps(slave: &Slave) -> (u32, Reap) {
    let plain: u32 = within(slave.exec("start_sleep", &false))
        .await
        .unwrap()
        .value()
        .unwrap();
    let setsid: u32 = within(slave.exec("start_sleep", &true))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert!(!process_gone(plain));
    (plain, Reap(vec![plain, setsid]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_slave_ends_the_processes_it_started() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let (plain, _reap) = start_sleeps(&slave).await;
    drop(slave);
    drop(master);
    assert!(wait_gone(plain).await, "{plain} outlived its dropped slave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_slave_ends_the_processes_it_started() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let (plain, _reap) = start_sleeps(&slave).await;
    within(slave.close()).await.unwrap();
    assert!(wait_gone(plain).await, "{plain} outlived its closed slave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_a_slave_ends_the_processes_it_started() {
    let master = Master::new();
    let slave = spawn_ready(&master, slave_options()).await;
    let (plain, _reap) = start_sleeps(&slave).await;
    within(slave.shutdown()).await.unwrap();
    assert!(
        wait_gone(plain).await,
        "{plain} outlived its shut-down slave"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_slave_ends_the_processes_it_started() {
    let master = Master::new();
    for signal in [Signal::KILL, Signal::TERM] {
        let slave = spawn_ready(&master, slave_options()).await;
        let (plain, _reap) = start_sleeps(&slave).await;
        within(slave.kill(signal)).await.unwrap();
        within(slave.exited()).await;
        assert!(
            wait_gone(plain).await,
            "{plain} outlived its slave killed with {signal}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_process_ends_what_its_slaves_started() {
    let mut master = master_process_as("grandchildren").spawn().unwrap();
    let mut reap = Reap(vec![master.id()]);
    let mut lines = std::io::BufReader::new(master.stdout.take().unwrap()).lines();
    let pids = read_pids(&mut lines, &["SLAVE_PID", "PLAIN_PID", "SETSID_PID"]);
    reap.0.extend(&pids);
    // The slave and, with it, whatever helper processes the master started.
    let children = children_of(master.id());
    reap.0.extend(&children);
    assert!(children.contains(&pids[0]), "{children:?} {pids:?}");
    kill_9(master.id());
    master.wait().unwrap();
    for pid in children.iter().chain([&pids[1]]) {
        assert!(
            wait_gone(*pid).await,
            "{pid} outlived its SIGKILLed master (slave {}, plain {})",
            pids[0],
            pids[1]
        );
    }
}

// ----- C: the output relay -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_without_newline_is_relayed_in_bounded_pieces() {
    let mut master = master_process_as("long-line").spawn().unwrap();
    let _reap = Reap(vec![master.id()]);
    let stdout = master.stdout.take().unwrap();
    let reading = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let (mut pieces, mut total, mut slave) = (Vec::new(), 0, None);
        let mut line = Vec::new();
        while total < LONG_LINE {
            line.clear();
            if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                break;
            }
            if let Some(body) = line.strip_prefix(b"[big] ") {
                // The test harness in the slave prints a little around the line itself.
                let body = body.strip_suffix(b"\n").unwrap_or(body);
                pieces.push(body.len());
                total += body.iter().filter(|&&b| b == b'x').count();
            } else if let Some(pid) = line.strip_prefix(b"SLAVE_PID=") {
                slave = std::str::from_utf8(pid).unwrap().trim().parse::<u32>().ok();
            }
        }
        (pieces, total, slave)
    });
    let (pieces, total, slave) = within(reading).await.unwrap();
    kill_9(master.id());
    master.wait().unwrap();
    assert_eq!(total, LONG_LINE, "every byte is relayed");
    assert!(
        pieces.iter().all(|&n| n <= LINE_LIMIT),
        "pieces of at most {LINE_LIMIT} bytes: {:?}",
        &pieces[..pieces.len().min(10)]
    );
    let slave = slave.expect("the master printed its slave's pid");
    assert!(wait_gone(slave).await, "slave {slave} outlived its master");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stdout_does_not_freeze_the_master() {
    let marker = std::env::temp_dir().join(format!("distio-stalled-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let mut master = master_process_as("stalled")
        .env(MARKER_ENV, &marker)
        .spawn()
        .unwrap();
    // Held open and never read: once the pipe is full, the master's stdout is stalled.
    let _stdout = master.stdout.take();
    let mut reap = Reap(vec![master.id()]);
    let mut slave = None;
    for _ in 0..200 {
        if let Ok(written) = std::fs::read_to_string(&marker)
            && let [pid, fired, took] = written.split(' ').collect::<Vec<_>>()[..]
            && let (Ok(pid), Ok(fired), Ok(took)) = (
                pid.parse::<u32>(),
                fired.parse::<bool>(),
                took.parse::<u64>(),
            )
        {
            slave = Some((pid, fired, took));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let children = children_of(master.id());
    reap.0.extend(&children);
    kill_9(master.id());
    master.wait().unwrap();
    let _ = std::fs::remove_file(&marker);
    for pid in children {
        assert!(wait_gone(pid).await, "{pid} outlived its master");
    }
    let (_, fired, took) = slave.expect("the master's runtime froze behind its stalled stdout");
    assert!(fired, "the request to the stuck slave timed out");
    assert!(
        (2_000..8_000).contains(&took),
        "a 2 s timeout fired after {took} ms"
    );
}

// ----- D: the process-group reaper -----

/// Environment variable that makes [`__master_losing_its_reaper`] run as a master process.
const LOSE_REAPER_ENV: &str = "DISTIO_TEST_LOSE_REAPER";

/// Keeps the message of every warning logged in this process.
#[derive(Clone, Default)]
struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push(message.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// A master process that, like a C program hosting distio, does not ignore SIGPIPE: it
/// starts a slave (and with it the reaper), SIGKILLs its reaper, then starts and uses
/// another slave. Prints `SURVIVED` and each warning as `WARNING=<message>`.
#[test]
fn __master_losing_its_reaper() {
    if std::env::var_os(LOSE_REAPER_ENV).is_none() {
        return;
    }
    // SAFETY: signal(2) with SIG_DFL installs no handler of ours; Rust's runtime set
    // SIGPIPE to SIG_IGN at startup, and this puts back what a C host would have.
    #[allow(unsafe_code)]
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR);
    let warnings = Warnings::default();
    tracing::subscriber::set_global_default(warnings.clone()).unwrap();
    block_on_one_thread(async {
        let master = Master::new();
        let first = spawn_ready(&master, slave_options()).await;
        let slave = first.pid().unwrap();
        let others: Vec<u32> = children_of(std::process::id())
            .into_iter()
            .filter(|&pid| pid != slave)
            .collect();
        let [reaper] = others[..] else {
            panic!("expected one child besides slave {slave}: {others:?}");
        };
        kill_9(reaper);
        assert!(
            wait_gone(reaper).await,
            "the reaper {reaper} survived SIGKILL"
        );
        // Adding this slave's group is the first record the dead reaper cannot take.
        let second = spawn_ready(&master, slave_options()).await;
        let four: u64 = within(second.exec("square", &2u64))
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(four, 4);
        assert!(
            std::fs::metadata(format!("/proc/{reaper}")).is_err(),
            "the dead reaper {reaper} was left a zombie"
        );
        within(second.close()).await.unwrap();
        within(first.close()).await.unwrap();
    });
    println!("SURVIVED");
    for warning in warnings.0.lock().unwrap().iter() {
        println!("WARNING={warning}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_survives_its_reaper_being_killed() {
    use std::os::unix::process::ExitStatusExt;

    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "__master_losing_its_reaper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(LOSE_REAPER_ENV, "1")
        .stdin(std::process::Stdio::null());
    let output = within(tokio::task::spawn_blocking(move || command.output()))
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.signal(),
        None,
        "the master died of a signal: {stdout}"
    );
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("SURVIVED"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("WARNING=") && line.contains("reaper is gone")),
        "no warning about the dead reaper: {stdout}"
    );
}
