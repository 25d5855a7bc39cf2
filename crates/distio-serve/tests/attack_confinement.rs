//! Attacks on script confinement, against the real server: paths that climb out, symlinks
//! that lead out (also swapped in while spawning), things that are not scripts, scripts
//! anyone may change, and a client trying to choose how its slave runs.

mod common;

use common::{Client, start, within};
use distio_proto::remote::{ClientEvent, SpawnFailure};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What became of a spawn: its output lines and exit code, or its refusal.
enum Outcome {
    Ran {
        lines: Vec<String>,
        code: Option<i32>,
    },
    Refused(SpawnFailure, String),
}

async fn outcome(client: &mut Client, script: &str, args: &[&str]) -> Outcome {
    let channel = client.spawn(script, args).await;
    let mut lines = Vec::new();
    loop {
        match client.event().await {
            ClientEvent::SpawnFailed(f) if f.channel == channel => {
                return Outcome::Refused(f.kind, f.message);
            }
            ClientEvent::Output(o) if o.channel == channel => {
                lines.push(String::from_utf8_lossy(&o.data).trim_end().to_owned());
            }
            ClientEvent::Exited(e) if e.channel == channel => {
                return Outcome::Ran {
                    lines,
                    code: e.code,
                };
            }
            ClientEvent::Closing(c) => panic!("the session closed: {c:?}"),
            _ => {}
        }
    }
}

async fn refused(client: &mut Client, script: &str) -> SpawnFailure {
    match within(outcome(client, script, &[])).await {
        Outcome::Refused(kind, message) => {
            assert!(message.contains(script), "{message}");
            kind
        }
        Outcome::Ran { lines, .. } => panic!("`{script}` ran: {lines:?}"),
    }
}

fn write(path: &Path, body: &str, mode: u32) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory outside the root with `run.sh`, which creates `marker` beside itself.
fn outside(root: &Path) -> (PathBuf, PathBuf) {
    let dir = root.with_extension("outside");
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("marker");
    write(
        &dir.join("run.sh"),
        &format!("touch '{}'\n", marker.display()),
        0o755,
    );
    (dir, marker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_escapes_are_refused() {
    let server = start(|b| b).await;
    let mut client = Client::connect(server.addr).await;
    for script in ["../slave.sh", "sub/../../x.sh", "sub/..", ".."] {
        assert_eq!(
            refused(&mut client, script).await,
            SpawnFailure::OutsideRoot
        );
    }
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_paths_and_odd_components_are_refused() {
    let server = start(|b| b).await;
    let mut client = Client::connect(server.addr).await;
    let script = server.root.join("out.sh");
    assert_eq!(
        refused(&mut client, script.to_str().unwrap()).await,
        SpawnFailure::OutsideRoot
    );
    assert_eq!(
        refused(&mut client, "/bin/sh").await,
        SpawnFailure::OutsideRoot
    );
    for odd in ["./out.sh", "sub//x.sh", "sub/"] {
        assert_eq!(refused(&mut client, odd).await, SpawnFailure::Invalid);
    }
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_to_a_file_or_a_directory_outside_are_refused() {
    let server = start(|b| b).await;
    let (dir, marker) = outside(&server.root);
    std::os::unix::fs::symlink(dir.join("run.sh"), server.root.join("abs.sh")).unwrap();
    std::os::unix::fs::symlink("../../x.outside/run.sh", server.root.join("sub/rel.sh")).unwrap();
    std::os::unix::fs::symlink(&dir, server.root.join("outdir")).unwrap();
    let relative = format!("../{}", dir.file_name().unwrap().to_str().unwrap());
    std::os::unix::fs::symlink(&relative, server.root.join("reldir")).unwrap();
    // A symlink that stays inside is fine.
    std::os::unix::fs::symlink("out.sh", server.root.join("inside.sh")).unwrap();
    let mut client = Client::connect(server.addr).await;
    for script in ["escape", "abs.sh", "outdir/run.sh", "reldir/run.sh"] {
        assert_eq!(
            refused(&mut client, script).await,
            SpawnFailure::OutsideRoot
        );
    }
    assert!(matches!(
        refused(&mut client, "sub/rel.sh").await,
        SpawnFailure::OutsideRoot | SpawnFailure::NoSuchScript
    ));
    match within(outcome(&mut client, "inside.sh", &[])).await {
        Outcome::Ran { code, .. } => assert_eq!(code, Some(3)),
        Outcome::Refused(kind, message) => panic!("{kind:?}: {message}"),
    }
    assert!(!marker.exists(), "a script outside the root ran");
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_a_device_or_a_directory_named_as_script_is_refused_without_hanging() {
    let server = start(|b| b).await;
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        server.root.join("fifo.sh"),
        rustix::fs::Mode::from_raw_mode(0o755),
    )
    .unwrap();
    // A character device (as /dev/zero: reading it never ends); needs root, as the tests run.
    let device = rustix::fs::mknodat(
        rustix::fs::CWD,
        server.root.join("zero.sh"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o755),
        rustix::fs::makedev(1, 5),
    );
    let mut client = Client::connect(server.addr).await;
    let mut scripts = vec!["fifo.sh", "sub"];
    if device.is_ok() {
        scripts.push("zero.sh");
    } else {
        eprintln!("skipping the device case: cannot create a device node here");
    }
    for script in scripts {
        assert_eq!(
            refused(&mut client, script).await,
            SpawnFailure::NotExecutable
        );
    }
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_writable_script_is_refused_unless_allowed() {
    let server = start(|b| b).await;
    write(&server.root.join("open.sh"), "exit 7\n", 0o666);
    let mut client = Client::connect(server.addr).await;
    assert_eq!(
        refused(&mut client, "open.sh").await,
        SpawnFailure::NotExecutable
    );
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();

    let server = start(|b| {
        b.containment(distio_serve::Containment {
            allow_root_slaves: true,
            allow_world_writable_scripts: true,
            ..distio_serve::Containment::default()
        })
    })
    .await;
    write(&server.root.join("open.sh"), "exit 7\n", 0o666);
    let mut client = Client::connect(server.addr).await;
    match within(outcome(&mut client, "open.sh", &[])).await {
        Outcome::Ran { code, .. } => assert_eq!(code, Some(7)),
        Outcome::Refused(kind, message) => panic!("{kind:?}: {message}"),
    }
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_in_a_loop_during_spawns_never_escapes() {
    let server = start(|b| b).await;
    let root = server.root.clone();
    let (outside_dir, marker) = outside(&root);
    // `dir` is a real directory with a harmless run.sh; `other` a symlink to the outside
    // one. A thread exchanges the two names atomically, over and over.
    std::fs::create_dir(root.join("dir")).unwrap();
    write(&root.join("dir/run.sh"), "echo inside\n", 0o755);
    std::os::unix::fs::symlink(&outside_dir, root.join("other")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, root) = (stop.clone(), root.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    root.join("dir"),
                    rustix::fs::CWD,
                    root.join("other"),
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .expect("renameat2(RENAME_EXCHANGE)");
                swaps += 1;
            }
            swaps
        })
    };
    let mut client = Client::connect(server.addr).await;
    let (mut ran, mut refused_outside) = (0, 0);
    for _ in 0..150 {
        match within(outcome(&mut client, "dir/run.sh", &[])).await {
            Outcome::Ran { lines, code } => {
                assert_eq!(lines, ["inside"], "exit {code:?}");
                ran += 1;
            }
            Outcome::Refused(SpawnFailure::OutsideRoot, _) => refused_outside += 1,
            Outcome::Refused(kind, message) => panic!("{kind:?}: {message}"),
        }
        assert!(!marker.exists(), "the script outside the root ran");
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("{ran} ran inside, {refused_outside} refused, {swaps} swaps");
    assert!(swaps > 150, "the swapper barely ran ({swaps} swaps)");
    assert!(!marker.exists(), "the script outside the root ran");
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(outside_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_chosen_interpreter_env_or_cwd_are_ignored() {
    let server = start(|b| b).await;
    // The spawn frame has only a script path and arguments: a client that passes what
    // looks like an interpreter, environment or directory only gives the script arguments.
    write(
        &server.root.join("env.sh"),
        "tr '\\000' '\\n' < /proc/$$/environ\necho \"cwd=$(pwd -P)\"\necho \"args=$*\"\n",
        0o644,
    );
    let mut client = Client::connect(server.addr).await;
    let args = [
        "--interpreter=/bin/bash",
        "LD_PRELOAD=/tmp/evil.so",
        "--cwd=/",
    ];
    let lines = match within(outcome(&mut client, "env.sh", &args)).await {
        Outcome::Ran { lines, code } => {
            assert_eq!(code, Some(0), "{lines:?}");
            lines
        }
        Outcome::Refused(kind, message) => panic!("{kind:?}: {message}"),
    };
    let allowed = ["PATH", "LANG", "HOME", "DISTIO_SLAVE_FD"];
    let mut keys = Vec::new();
    for line in &lines {
        if let Some(cwd) = line.strip_prefix("cwd=") {
            assert_eq!(Path::new(cwd), server.root, "the slave's working directory");
        } else if let Some(args) = line.strip_prefix("args=") {
            // They arrived as plain arguments, nothing more.
            assert!(
                args.contains("--cwd=/") && args.contains("LD_PRELOAD"),
                "{args}"
            );
        } else if let Some((key, _)) = line.split_once('=') {
            assert!(allowed.contains(&key), "the slave saw `{key}`: {lines:?}");
            keys.push(key.to_owned());
        }
    }
    assert!(keys.contains(&"DISTIO_SLAVE_FD".to_owned()), "{lines:?}");
    server.stop.shutdown();
    within(server.task).await.unwrap().unwrap();
}
