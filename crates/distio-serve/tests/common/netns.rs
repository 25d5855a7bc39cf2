//! A small multi-host lab on one machine: `n` network namespaces on a bridge, each a "host"
//! with its own address, reachable from the test process in the root namespace.
//!
//! ```text
//!   root namespace (the test)           namespace i ("host" i)
//!   bridge  10.77.X.1/24  ── veth ──►   eth0  10.77.X.(10+i)/24
//! ```
//!
//! [`NetLab::new`] returns `None` (and says why on stderr) unless the test runs as root and
//! `ip netns` works; set `DISTIO_NETLAB=require` to make that a failure instead (CI that
//! must run these tests). Everything a lab made (namespaces, veths, bridge, every process
//! running in its namespaces) is removed when it is dropped, also when the test panics; a
//! lab left by a test process that was killed is swept by the next lab of any process.
//!
//! ```ignore
//! let Some(lab) = NetLab::new(3) else { return }; // skipped: not root
//! let server = lab.start_serve(1, 1337, &[]);
//! lab.cut(1);      // the link of host 1 is down; TCP connections to it stay open
//! lab.restore(1);  // and come back
//! ```
//!
//! Needs `ip` from iproute2 (Debian/Ubuntu package `iproute2`).

use rustix::fs::FlockOperation;
use rustix::process::Pid;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a started server has to accept a TCP connection from the root namespace.
const SERVE_START_BOUND: Duration = Duration::from_secs(30);
/// How long the processes of a namespace have to be gone after SIGKILL.
const KILL_BOUND: Duration = Duration::from_secs(10);
/// The most hosts in one lab (addresses .10 to .209).
const MAX_HOSTS: usize = 200;
/// Set to `require` to fail instead of skipping when namespaces are not available.
const REQUIRE_VAR: &str = "DISTIO_NETLAB";

/// `n` network namespaces on a bridge; see the module docs. Removed on drop.
pub struct NetLab {
    tag: String,
    subnet: u8,
    bridge: Option<String>,
    hosts: Vec<LabHost>,
    dir: PathBuf,
    logs: std::sync::Mutex<Vec<PathBuf>>,
}

struct LabHost {
    netns: String,
    /// The veth end on the bridge, in the root namespace.
    veth: Option<String>,
    addr: Ipv4Addr,
}

impl NetLab {
    /// A lab of `n` hosts (1 to 200), or `None` when the test cannot make one (not root, no
    /// `ip`, no network namespaces), after printing `skipped: needs root and network
    /// namespaces` to stderr. Panics when namespaces work but building the lab fails.
    pub fn new(n: usize) -> Option<NetLab> {
        assert!(
            (1..=MAX_HOSTS).contains(&n),
            "a lab has 1 to {MAX_HOSTS} hosts, not {n}"
        );
        if let Err(why) = available() {
            if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "require") {
                panic!("{REQUIRE_VAR}=require but network namespaces are unavailable: {why}");
            }
            eprintln!("skipped: needs root and network namespaces ({why})");
            return None;
        }
        static SWEPT: OnceLock<()> = OnceLock::new();
        SWEPT.get_or_init(sweep_leftovers);

        static LABS: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "dn{:x}-{:x}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("distio-netlab-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the lab's log directory");
        let mut lab = NetLab {
            tag,
            subnet: 0,
            bridge: None,
            hosts: Vec::with_capacity(n),
            dir,
            logs: std::sync::Mutex::new(Vec::new()),
        };
        // From here on a failure panics and Drop removes what was made so far.
        lab.make_bridge();
        for i in 0..n {
            lab.add_host(i);
        }
        Some(lab)
    }

    fn link_name(&self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.tag);
        assert!(name.len() <= 15, "interface name {name} is over 15 bytes");
        name
    }

    /// Picks a free 10.77.X.0/24 (under a lock shared by every test process) and gives the
    /// bridge its .1.
    fn make_bridge(&mut self) {
        let _lock = SubnetLock::acquire();
        self.subnet = free_subnet().expect("a free 10.77.X.0/24 subnet for the lab");
        let bridge = self.link_name("sw");
        ip(&["link", "add", &bridge, "type", "bridge"]).expect("add the lab's bridge");
        self.bridge = Some(bridge.clone());
        let gateway = format!("10.77.{}.1/24", self.subnet);
        ip(&["addr", "add", &gateway, "dev", &bridge]).expect("address the bridge");
        ip(&["link", "set", &bridge, "up"]).expect("bring the bridge up");
    }

    fn add_host(&mut self, i: usize) {
        let netns = format!("{}-{i}", self.tag);
        let octet = u8::try_from(10 + i).expect("at most 200 hosts");
        let addr = Ipv4Addr::new(10, 77, self.subnet, octet);
        ip(&["netns", "add", &netns]).expect("add a namespace");
        self.hosts.push(LabHost {
            netns: netns.clone(),
            veth: None,
            addr,
        });
        let veth = self.link_name(&format!("v{i}"));
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ])
        .expect("add the namespace's veth pair");
        if let Some(host) = self.hosts.last_mut() {
            host.veth = Some(veth.clone());
        }
        let bridge = self.bridge.clone().expect("the bridge exists");
        ip(&["link", "set", &veth, "master", &bridge, "up"]).expect("put the veth on the bridge");
        let cidr = format!("{addr}/24");
        for args in [
            vec!["-n", &netns, "addr", "add", &cidr, "dev", "eth0"],
            vec!["-n", &netns, "link", "set", "eth0", "up"],
            vec!["-n", &netns, "link", "set", "lo", "up"],
        ] {
            ip(&args).expect("configure the namespace");
        }
    }

    /// How many hosts the lab has.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    fn host(&self, i: usize) -> &LabHost {
        self.hosts
            .get(i)
            .unwrap_or_else(|| panic!("the lab has {} hosts, not a host {i}", self.hosts.len()))
    }

    /// The address of host `i` (10.77.X.(10+i)).
    pub fn addr(&self, i: usize) -> IpAddr {
        IpAddr::V4(self.host(i).addr)
    }

    /// The bridge's address in the root namespace (10.77.X.1): where connections from the
    /// test come from, as the hosts see them.
    pub fn gateway(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 77, self.subnet, 1))
    }

    /// The name of host `i`'s namespace (for `ip netns exec`).
    pub fn netns(&self, i: usize) -> &str {
        &self.host(i).netns
    }

    /// The names of every namespace and interface the lab made (to check they are gone).
    pub fn resource_names(&self) -> (Vec<String>, Vec<String>) {
        let netns = self.hosts.iter().map(|h| h.netns.clone()).collect();
        let links = self
            .bridge
            .iter()
            .cloned()
            .chain(self.hosts.iter().filter_map(|h| h.veth.clone()))
            .collect();
        (netns, links)
    }

    /// Cuts host `i` off: its veth end on the bridge goes down. Nothing reaches it or leaves
    /// it, but TCP connections are not reset: they stall (retransmitting) until
    /// [`restore`](Self::restore), or until a side gives up. New connects to it fail (time out,
    /// or "no route to host" once the root namespace's ARP entry for it has expired).
    pub fn cut(&self, i: usize) {
        self.set_link(i, "down");
    }

    /// Undoes [`cut`](Self::cut).
    pub fn restore(&self, i: usize) {
        self.set_link(i, "up");
    }

    fn set_link(&self, i: usize, state: &str) {
        let veth = self.host(i).veth.as_deref().expect("the host's veth");
        ip(&["link", "set", veth, state]).unwrap_or_else(|e| panic!("set {veth} {state}: {e}"));
    }

    /// `command` as it would run inside host `i`: `ip netns exec NS program args…` with the
    /// same environment changes and working directory. Its stdio is not carried over (std
    /// cannot read it back): set it on the result.
    pub fn command_in(&self, i: usize, command: &Command) -> Command {
        let mut inside = Command::new("ip");
        inside
            .args(["netns", "exec", self.netns(i)])
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => inside.env(key, value),
                None => inside.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            inside.current_dir(dir);
        }
        inside
    }

    /// Starts `command` inside host `i` (stdin empty, stdout and stderr to files of the lab,
    /// read with [`LabChild::stdout`]/[`LabChild::stderr`]). The owner SIGKILLs it on drop;
    /// dropping the lab kills it too.
    pub fn spawn_in(&self, i: usize, command: Command) -> LabChild {
        static CHILDREN: AtomicU32 = AtomicU32::new(0);
        let n = CHILDREN.fetch_add(1, Ordering::Relaxed);
        let out = self.dir.join(format!("host{i}-{n}.out"));
        let err = self.dir.join(format!("host{i}-{n}.err"));
        let child = self
            .command_in(i, &command)
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("create a stdout file"))
            .stderr(File::create(&err).expect("create a stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?} in host {i}: {e}", command.get_program()));
        if let Ok(mut logs) = self.logs.lock() {
            logs.extend([out.clone(), err.clone()]);
        }
        LabChild {
            child: Some(child),
            out,
            err,
        }
    }

    /// Starts the real `distio-serve` in host `i`, listening on its address and `port` (0: any)
    /// in plaintext (`--insecure-plaintext`), slaves allowed as root, with a fresh root of the
    /// test scripts ([`super::make_root`]); `extra_args` go last. Returns once it accepts TCP
    /// from the root namespace (panics with its log after 30 s, or when it exits).
    pub fn start_serve(&self, i: usize, port: u16, extra_args: &[&str]) -> LabServe {
        let root = super::make_root();
        let mut command = super::serve_binary();
        command
            .arg("--bind")
            .arg(self.addr(i).to_string())
            .arg("--port")
            .arg(port.to_string())
            .arg("--root")
            .arg(&root)
            .arg("--insecure-plaintext")
            .args(extra_args);
        let mut process = self.spawn_in(i, command);
        let deadline = Instant::now() + SERVE_START_BOUND;
        let addr = loop {
            if let Some(status) = process.exited() {
                panic!(
                    "distio-serve in host {i} exited ({status}) before accepting; stderr:\n{}",
                    process.stderr()
                );
            }
            if let Some(addr) = listening_addr(&process.stdout()) {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                    break addr;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "distio-serve in host {i} accepted nothing from the root namespace within \
                     {SERVE_START_BOUND:?}; stderr:\n{}",
                    process.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        LabServe {
            process,
            addr,
            root,
        }
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for host in &self.hosts {
            kill_all_in(&host.netns);
            if let Err(e) = ip(&["netns", "del", &host.netns]) {
                eprintln!("netlab: could not delete namespace {}: {e}", host.netns);
            }
            // Deleting one end of a veth pair deletes both.
            if let Some(veth) = &host.veth {
                let _ = ip(&["link", "del", veth]);
            }
        }
        if let Some(bridge) = &self.bridge {
            if let Err(e) = ip(&["link", "del", bridge]) {
                eprintln!("netlab: could not delete bridge {bridge}: {e}");
            }
        }
        if std::thread::panicking() {
            // What ran in the lab, for the failure report.
            if let Ok(logs) = self.logs.lock() {
                for log in logs.iter() {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    if !text.is_empty() {
                        let tail: String = tail_lines(&text, 40);
                        eprintln!("--- netlab {} ---\n{tail}", log.display());
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process started in a lab host: SIGKILLed (with what it started) and reaped when dropped.
pub struct LabChild {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl LabChild {
    /// Its pid (in the root pid namespace: `ip netns exec` execs the program).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILLs it and every process it started, and reaps it (no-op when already done).
    pub fn kill9(&mut self) {
        if let Some(child) = self.child.take() {
            super::fleet::kill_tree(child);
        }
    }

    /// Its exit status once it has exited (reaps it), `None` while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }
}

impl Drop for LabChild {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A `distio-serve` running in a lab host: SIGKILLed with its slaves on drop.
pub struct LabServe {
    /// The process.
    pub process: LabChild,
    /// Where it listens (the host's address).
    pub addr: SocketAddr,
    /// Its script root (the test scripts of [`super::make_root`]).
    pub root: PathBuf,
}

impl LabServe {
    /// `ws://ADDR`, the URL a master connects to.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The host dies: SIGKILLs the server and its slaves.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

impl Drop for LabServe {
    fn drop(&mut self) {
        self.process.kill9();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The address from the binary's `listening on ADDR` stdout line.
fn listening_addr(stdout: &str) -> Option<SocketAddr> {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("listening on ")?.parse().ok())
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `ip ARGS`; its stdout, or what went wrong.
fn ip(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Whether labs can be made here: root, `ip`, and a namespace can be added and deleted.
/// Probed once per process.
fn available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            if !rustix::process::geteuid().is_root() {
                return Err("not running as root".into());
            }
            ip(&["netns", "list"])?;
            let probe = format!("dnprobe-{}", std::process::id());
            ip(&["netns", "add", &probe])?;
            ip(&["netns", "del", &probe])?;
            Ok(())
        })
        .clone()
}

/// SIGKILLs every process in namespace `netns` until none is left (bounded).
fn kill_all_in(netns: &str) {
    let deadline = Instant::now() + KILL_BOUND;
    loop {
        let pids: Vec<Pid> = ip(&["netns", "pids", netns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| Pid::from_raw(p.parse().ok()?))
            .collect();
        if pids.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("netlab: processes {pids:?} of {netns} survived SIGKILL");
            return;
        }
        for pid in pids {
            // A process gone meanwhile is fine.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid in a lab name, when `name` is one: `dn{pid:x}-{n:x}` then `sw` (bridge), `v{i}`
/// (veth) or `-{i}` (namespace); the suffixes start with a letter that is not hex.
pub fn lab_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("dn")?;
    let (pid, rest) = rest.split_once('-')?;
    let counter_end = rest
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len());
    let (counter, suffix) = rest.split_at(counter_end);
    let suffix_ok = match suffix {
        "sw" => true,
        _ => suffix
            .strip_prefix('v')
            .or_else(|| suffix.strip_prefix('-'))
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())),
    };
    if counter.is_empty() || !suffix_ok {
        return None;
    }
    u32::from_str_radix(pid, 16).ok()
}

/// Removes the labs of test processes that no longer run (killed before their Drop).
fn sweep_leftovers() {
    let dead =
        |name: &str| lab_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
    for line in ip(&["netns", "list"]).unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if dead(name) {
            kill_all_in(name);
            let _ = ip(&["netns", "del", name]);
        }
    }
    for line in ip(&["-o", "link", "show"]).unwrap_or_default().lines() {
        // `7: dn1f-0v0@if6: <…`
        let name = line
            .split(':')
            .nth(1)
            .map(|n| n.trim().split('@').next().unwrap_or(""))
            .unwrap_or("");
        if dead(name) {
            let _ = ip(&["link", "del", name]);
        }
    }
    // Their log directories, `distio-netlab-dn{pid:x}-{n:x}`.
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(tag) = name.strip_prefix("distio-netlab-") else {
            continue;
        };
        if dead(&format!("{tag}sw")) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A free 10.77.X.0/24: no address or route of this machine in it. Starts from the pid so
/// test processes mostly try different ones.
fn free_subnet() -> Option<u8> {
    let used = format!(
        "{}\n{}",
        ip(&["-4", "-o", "addr", "show"]).unwrap_or_default(),
        ip(&["-4", "route", "show", "table", "all"]).unwrap_or_default()
    );
    let start = std::process::id() % 200;
    (0..200)
        .map(|k| u8::try_from(20 + (start + k) % 200).unwrap_or(20))
        .find(|x| !used.contains(&format!("10.77.{x}.")))
}

/// An exclusive lock on a file shared by every test process, held while a lab picks its
/// subnet and addresses its bridge.
struct SubnetLock(File);

impl SubnetLock {
    fn acquire() -> SubnetLock {
        let path = std::env::temp_dir().join("distio-netlab.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("open the netlab lock file");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
                return SubnetLock(file);
            }
            assert!(
                Instant::now() < deadline,
                "{} stayed locked for 30 s",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
