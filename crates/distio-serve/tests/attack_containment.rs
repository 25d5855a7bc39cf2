//! Containment of what slaves run, against the real server: the user they run as, a fork
//! bomb, a memory hog, and a descendant that leaves the slave's process group.

mod common;

use common::{Client, start, wait_gone, within};
use distio_proto::remote::ClientEvent;
use distio_serve::{Containment, ServeError, Server};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const NOBODY: u32 = 65534;

fn write(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn as_nobody(containment: Containment) -> Containment {
    Containment {
        run_as_user: Some(NOBODY.to_string()),
        run_as_group: Some(NOBODY.to_string()),
        ..containment
    }
}

/// Output lines of `channel` until it exits, and its exit (code, signal).
async fn run_to_exit(client: &mut Client, channel: u32) -> (Vec<String>, Option<i32>, Option<i32>) {
    let mut lines = Vec::new();
    loop {
        match client.event().await {
            ClientEvent::SpawnFailed(f) if f.channel == channel => {
                panic!("spawn failed: {:?} {}", f.kind, f.message)
            }
            ClientEvent::Output(o) if o.channel == channel => {
                lines.push(String::from_utf8_lossy(&o.data).trim_end().to_owned());
            }
            ClientEvent::Exited(e) if e.channel == channel => return (lines, e.code, e.signal),
            ClientEvent::Closing(c) => panic!("the session closed: {c:?}"),
            _ => {}
        }
    }
}

/// Processes of `uid` on this host.
fn processes_of(uid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let real = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next()?.parse::<u32>().ok());
        if real == Some(uid) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether this process could give a slave a cgroup of its own (cgroup v2, writable).
fn cgroups_available() -> bool {
    let Ok(cgroup) = std::fs::read_to_string("/proc/self/cgroup") else {
        return false;
    };
    let Some(path) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(mount) = mountinfo.lines().find_map(|line| {
        let (fields, fs) = line.split_once(" - ")?;
        (fs.split_whitespace().next()? == "cgroup2").then(|| fields.split_whitespace().nth(4))?
    }) else {
        return false;
    };
    let probe = Path::new(mount)
        .join(path.trim_start_matches('/'))
        .join(format!("distio-probe-{}", std::process::id()));
    let ok = std::fs::create_dir(&probe).is_ok() && probe.join("cgroup.kill").exists();
    let _ = std::fs::remove_dir(&probe);
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_server_without_a_slave_user_refuses_to_start() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: this test needs to run as root");
        return;
    }
    let root = common::make_root();
    let err = Server::builder()
        .port(0)
        .root(&root)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::RootSlaves), "{err}");
    assert!(err.to_string().contains("run_as_user"), "{err}");
    assert_eq!(distio_serve::exit_code(&err), 78);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slaves_run_as_the_configured_user_without_supplementary_groups() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let server = start(|b| b.containment(as_nobody(Containment::default()))).await;
    write(
        &server.root.join("id.sh"),
        "grep -E '^(Uid|Gid|Groups):' /proc/$$/status\nulimit -c\nulimit -n\n",
    );
    let mut client = Client::connect(server.addr).await;
    let channel = client.spawn("id.sh", &[]).await;
    let (lines, code, _) = within(run_to_exit(&mut client, channel)).await;
    assert_eq!(code, Some(0), "{lines:?}");
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
    };
    assert_eq!(field("Uid:"), vec![NOBODY.to_string(); 4], "{lines:?}");
    assert_eq!(field("Gid:"), vec![NOBODY.to_string(); 4], "{lines:?}");
    assert!(field("Groups:").is_empty(), "{lines:?}");
    // Core dumps off and 1024 files: the defaults.
    assert_eq!(lines[lines.len() - 2..], ["0", "1024"], "{lines:?}");
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_in_a_slave_is_contained_and_the_server_stays_responsive() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: RLIMIT_NPROC does not hold for this test without a user switch");
        return;
    }
    const LIMIT: u64 = 32;
    // Both limits are set before the bomb runs; the bomb itself is bounded (300 forks).
    let containment = as_nobody(Containment {
        processes: Some(LIMIT),
        pids_max: Some(LIMIT),
        ..Containment::default()
    });
    let server = start(|b| b.containment(containment)).await;
    write(
        &server.root.join("bomb.sh"),
        "i=0\nwhile [ $i -lt 300 ]; do\n  (sleep 120 &) 2>/dev/null\n  i=$((i+1))\ndone\necho done\nsleep 120\n",
    );
    let mut bomber = Client::connect(server.addr).await;
    let channel = bomber.spawn("bomb.sh", &[]).await;
    let spawned = bomber.spawned(channel).await;
    // Let the bomb hit its limit.
    let mut peak = 0;
    for _ in 0..50 {
        peak = peak.max(processes_of(NOBODY).len());
        if peak >= LIMIT as usize - 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        peak = peak.max(processes_of(NOBODY).len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(peak <= LIMIT as usize, "{peak} processes of the slave user");
    // The server still answers: a new session opens and is refused or served, promptly.
    let answered = tokio::time::timeout(Duration::from_secs(20), async {
        let mut other = Client::connect(server.addr).await;
        let channel = other.spawn("out.sh", &[]).await;
        loop {
            match other.event().await {
                ClientEvent::SpawnFailed(f) if f.channel == channel => break,
                ClientEvent::Exited(e) if e.channel == channel => break,
                _ => {}
            }
        }
        other.close().await;
    })
    .await;
    assert!(answered.is_ok(), "the server did not answer a new session");
    bomber.close().await;
    assert!(
        wait_gone(spawned.pid).await,
        "the bomb outlived its session"
    );
    for _ in 0..200 {
        if processes_of(NOBODY).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        processes_of(NOBODY),
        Vec::<u32>::new(),
        "the bomb's processes outlived it"
    );
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_in_a_slave_is_contained() {
    const LIMIT: u64 = 256 << 20;
    let server = start(|b| {
        b.containment(Containment {
            allow_root_slaves: true,
            address_space_bytes: Some(LIMIT),
            memory_max_bytes: Some(LIMIT),
            ..Containment::default()
        })
    })
    .await;
    // The shell keeps growing one string, up to 1 GiB (bounded even without limits).
    write(
        &server.root.join("hog.sh"),
        "x=$(head -c 1073741824 /dev/zero | tr '\\000' a)\necho \"survived ${#x}\"\n",
    );
    let mut client = Client::connect(server.addr).await;
    let channel = client.spawn("hog.sh", &[]).await;
    let (lines, code, signal) = within(run_to_exit(&mut client, channel)).await;
    assert!(
        !lines.iter().any(|l| l.starts_with("survived")),
        "the hog got its memory: {lines:?}"
    );
    assert!(
        code != Some(0) || signal.is_some(),
        "{code:?} {signal:?} {lines:?}"
    );
    // The server is fine: the next slave runs.
    let channel = client.spawn("out.sh", &[]).await;
    let (lines, code, _) = within(run_to_exit(&mut client, channel)).await;
    // Its stdout and stderr lines come in either order.
    assert!(lines.iter().any(|l| l == "hello"), "{lines:?}");
    assert_eq!(code, Some(3));
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_double_forked_descendant_dies_with_its_slave() {
    if !cgroups_available() {
        eprintln!(
            "skipped: no writable cgroup v2 here, so a descendant that leaves the slave's \
             process group is not contained (the server says so at start)"
        );
        return;
    }
    let server = start(|b| b).await;
    let pidfile = server.root.join("daemon.pid");
    write(
        &server.root.join("daemon.sh"),
        "(setsid sh -c 'echo $$ > \"$1\"; exec sleep 1000' daemon \"$1\" &)\nsleep 1000\n",
    );
    let mut client = Client::connect(server.addr).await;
    let channel = client
        .spawn("daemon.sh", &[pidfile.to_str().unwrap()])
        .await;
    let spawned = client.spawned(channel).await;
    let mut daemon = None;
    for _ in 0..400 {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            daemon = Some(pid);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let daemon = daemon.expect("the daemon started");
    let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
    let pgid: u32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(
        pgid, spawned.pid,
        "the daemon did not leave the slave's group"
    );
    client.kill(channel, libc::SIGKILL).await;
    let _ = within(run_to_exit(&mut client, channel)).await;
    assert!(
        wait_gone(daemon).await,
        "the setsid daemon outlived its slave"
    );
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}
