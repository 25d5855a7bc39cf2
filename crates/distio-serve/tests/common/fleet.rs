//! Several servers on 127.0.0.1 for cluster tests, each with its own capacity: in this
//! process ([`Fleet`], built with [`super::start`]) or as `distio-serve` processes
//! ([`ProcessFleet`], built with [`super::serve_binary`] and [`super::spawn_serve`]) for tests
//! that kill a host with SIGKILL and bring it back on the same port.
//!
//! ```ignore
//! let fleet = Fleet::start(&[2, 2, 4]).await;          // capacities
//! let urls = fleet.urls();                             // ["ws://127.0.0.1:…", …]
//! let mut hosts = ProcessFleet::start(&[2, 2, 2]);
//! hosts.kill9(1);                                      // host 1 is gone, its port refuses
//! hosts.restart(1);                                    // and answers again on the same port
//! ```

use super::{ServeChild, TestServer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

/// In-process servers on 127.0.0.1:0, server `i` with `max_concurrent_slaves(caps[i])`, and
/// the settings of [`super::start`]. Dropping it tells the servers still running to stop
/// (their tasks end with the test's runtime); [`stop`](Self::stop) waits for one.
pub struct Fleet {
    servers: Vec<Option<TestServer>>,
    addrs: Vec<SocketAddr>,
}

impl Fleet {
    /// Starts one server per capacity.
    pub async fn start(caps: &[usize]) -> Fleet {
        Self::start_with(caps, |_, builder| builder).await
    }

    /// Starts one server per capacity, `configure` applied to each builder after the
    /// capacity (it gets the server's index).
    pub async fn start_with(
        caps: &[usize],
        configure: impl Fn(usize, distio_serve::ServerBuilder) -> distio_serve::ServerBuilder,
    ) -> Fleet {
        let mut servers = Vec::with_capacity(caps.len());
        for (i, &cap) in caps.iter().enumerate() {
            let configure = &configure;
            servers.push(super::start(|b| configure(i, b.max_concurrent_slaves(cap))).await);
        }
        let addrs = servers.iter().map(|s| s.addr).collect();
        Fleet {
            servers: servers.into_iter().map(Some).collect(),
            addrs,
        }
    }

    /// Where server `i` listens (also after it stopped).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// `ws://ADDR` of every server, in order.
    pub fn urls(&self) -> Vec<String> {
        self.addrs.iter().map(|a| format!("ws://{a}")).collect()
    }

    /// Server `i` (`None` once stopped).
    pub fn server(&self, i: usize) -> Option<&TestServer> {
        self.servers[i].as_ref()
    }

    /// Stops server `i` the graceful way (its sessions are told it is stopping) and waits
    /// for it to end (30 s bound).
    pub async fn stop(&mut self, i: usize) {
        if let Some(server) = self.servers[i].take() {
            server.stop.shutdown();
            let ended = super::within(server.task).await;
            let _ = std::fs::remove_dir_all(&server.root);
            ended.expect("server task").expect("server ends cleanly");
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for server in self.servers.iter_mut().filter_map(Option::take) {
            server.stop.shutdown();
            let _ = std::fs::remove_dir_all(&server.root);
        }
    }
}

/// `distio-serve` processes on 127.0.0.1, process `i` with `--max-concurrent-slaves caps[i]`,
/// a fresh script root each ([`super::make_root`]), stderr to a log file. Every process is
/// SIGKILLed and reaped on drop (its log printed when the test is failing).
pub struct ProcessFleet {
    hosts: Vec<FleetProcess>,
}

struct FleetProcess {
    child: Option<ServeChild>,
    addr: SocketAddr,
    cap: usize,
    root: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
}

impl ProcessFleet {
    /// Starts one process per capacity on a free port.
    pub fn start(caps: &[usize]) -> ProcessFleet {
        Self::start_with(caps, &[])
    }

    /// Like [`start`](Self::start), `extra_args` added to each command line.
    pub fn start_with(caps: &[usize], extra_args: &[&str]) -> ProcessFleet {
        static FLEETS: AtomicU32 = AtomicU32::new(0);
        let n = FLEETS.fetch_add(1, Ordering::Relaxed);
        let mut fleet = ProcessFleet {
            hosts: Vec::with_capacity(caps.len()),
        };
        for (i, &cap) in caps.iter().enumerate() {
            let log = std::env::temp_dir()
                .join(format!("distio-fleet-{}-{n}-{i}.log", std::process::id()));
            fleet.hosts.push(FleetProcess {
                child: None,
                addr: ([127, 0, 0, 1], 0).into(),
                cap,
                root: super::make_root(),
                log,
                extra: extra_args.iter().map(|a| a.to_string()).collect(),
            });
            fleet.launch(i);
        }
        fleet
    }

    fn launch(&mut self, i: usize) {
        let host = &mut self.hosts[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&host.log)
            .expect("open the server's log");
        let mut command = super::serve_binary();
        command
            .arg("--bind")
            .arg(host.addr.ip().to_string())
            .arg("--port")
            .arg(host.addr.port().to_string())
            .arg("--root")
            .arg(&host.root)
            .arg("--max-concurrent-slaves")
            .arg(host.cap.to_string())
            .args(&host.extra)
            .stdin(Stdio::null())
            .stderr(log);
        let child = super::spawn_serve(&mut command);
        host.addr = child.addr;
        host.child = Some(child);
    }

    /// How many processes the fleet has.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Where process `i` listens (the same port after a [`restart`](Self::restart)).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.hosts[i].addr
    }

    /// `ws://ADDR` of every process, in order.
    pub fn urls(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| format!("ws://{}", h.addr))
            .collect()
    }

    /// The pid of process `i` while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        let child = self.hosts[i].child.as_ref()?;
        child.child.as_ref().map(std::process::Child::id)
    }

    /// The host dies: process `i` and every process below it (its slaves) are SIGKILLed and
    /// the server reaped. Its sessions end without a word; its port refuses.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut server) = self.hosts[i].child.take() {
            if let Some(child) = server.child.take() {
                kill_tree(child);
            }
        }
    }

    /// Starts process `i` again on the port it had (after [`kill9`](Self::kill9)).
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.launch(i);
    }

    /// What process `i` logged so far (all its runs).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.hosts[i].log).unwrap_or_default()
    }
}

impl Drop for ProcessFleet {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        for (i, host) in self.hosts.iter_mut().enumerate() {
            if let Some(child) = host.child.take().and_then(|mut c| c.child.take()) {
                kill_tree(child);
            }
            if failing {
                let text = std::fs::read_to_string(&host.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!("--- distio-serve {i} at {} ---\n{tail}", host.addr);
            }
            let _ = std::fs::remove_file(&host.log);
            let _ = std::fs::remove_dir_all(&host.root);
        }
    }
}

/// SIGKILLs `child` and every process below it (found before the kill, through
/// /proc/PID/stat), then reaps `child`.
pub fn kill_tree(mut child: std::process::Child) {
    let below = descendants(child.id());
    let _ = child.kill();
    for pid in below {
        if let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            // Gone meanwhile is fine.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    let _ = child.wait();
}

/// Every process below `root` (children, their children, …) that runs now.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
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
        // "pid (comm) state ppid …": comm may hold spaces and ')', so after the last ')'.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut next = 0;
    while let Some(&parent) = found.get(next) {
        next += 1;
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
    }
    found.split_off(1)
}
