//! The remote scenarios: a distio master talking to slaves through a `distio-serve` process,
//! against the remote floor — a tokio-tungstenite client talking through `floor-relay` to
//! `floor-echo` children: the same two hops (WebSocket, then a Unix socket pair), with no
//! distio code.

use distio_bench::{FloorMessage, cpu_ns, decode, encode, peak_rss_kib};
use distio_master::{Master, Output, Slave, SlaveArray, SpawnOptions};
use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;
use crate::report::{Outcome, Target};
use crate::scenarios::{Programs, bytes_payload, capped, distio_pipelined, echo};
use crate::stats::{quantile, rate};

type Result<T> = std::result::Result<T, String>;

/// A server process (`distio-bench --serve-probe` or `floor-relay`) on a loopback port;
/// killed when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    _stdin: Option<ChildStdin>,
    pub(crate) port: u16,
}

impl ServerProcess {
    fn start(mut command: Command) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let port = line
            .trim()
            .parse()
            .map_err(|_| format!("server printed {line:?}, not a port"))?;
        Ok(ServerProcess {
            child,
            _stdin: stdin,
            port,
        })
    }

    /// `distio-serve` (as a library, in the bench binary) with the bench's directory as
    /// its root.
    pub(crate) fn distio(programs: &Programs) -> Result<Self> {
        let root = programs.bench.parent().ok_or("bench has no directory")?;
        let mut command = Command::new(&programs.bench);
        command.arg("--serve-probe").arg(root);
        Self::start(command)
    }

    pub(crate) fn floor(programs: &Programs) -> Result<Self> {
        let mut command = Command::new(&programs.floor_relay);
        command.arg(&programs.floor_echo);
        Self::start(command)
    }

    /// The process id, for reading its CPU time.
    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Peak resident memory so far, in MiB.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        peak_rss_kib(&self.child.id().to_string()).unwrap_or(0) as f64 / 1024.0
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The options for a bench slave on the server at `port`.
fn remote_options(programs: &Programs, port: u16) -> Result<SpawnOptions> {
    let script = programs
        .slave
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("bench has no file name")?;
    Ok(SpawnOptions::remote(format!("ws://127.0.0.1:{port}"), script).output(Output::Inherit))
}

async fn remote_slaves(
    master: &Master,
    programs: &Programs,
    port: u16,
    count: usize,
) -> Result<SlaveArray> {
    master
        .spawn_many(count, remote_options(programs, port)?)
        .await
        .map_err(|e| e.to_string())
}

/// One floor connection: a WebSocket to `floor-relay`, which gives it its own child.
pub(crate) struct FloorRemote {
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
}

impl FloorRemote {
    pub(crate) async fn connect(port: u16) -> Result<Self> {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/"), tcp)
            .await
            .map_err(|e| e.to_string())?;
        Ok(FloorRemote { ws, next_id: 0 })
    }

    async fn recv(&mut self) -> Result<FloorMessage> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    return decode(&bytes).ok_or_else(|| "floor reply did not decode".into());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("floor relay closed".into()),
            }
        }
    }

    pub(crate) async fn round_trip(&mut self, payload: &[u8]) -> Result<Duration> {
        let started = Instant::now();
        self.next_id += 1;
        let message = FloorMessage {
            id: self.next_id,
            payload: payload.to_vec(),
        };
        self.ws
            .send(Message::Binary(encode(&message)))
            .await
            .map_err(|e| e.to_string())?;
        let reply = self.recv().await?;
        if reply.id != self.next_id {
            return Err("floor reply out of order".into());
        }
        Ok(started.elapsed())
    }

    pub(crate) async fn pipelined(
        &mut self,
        total: usize,
        window: usize,
        payload: &[u8],
    ) -> Result<Duration> {
        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(window));
        let first = self.next_id + 1;
        let (mut sink, mut stream) = (&mut self.ws).split();
        let writer = async {
            for n in 0..total {
                permits.acquire().await.map_err(|e| e.to_string())?.forget();
                let message = FloorMessage {
                    id: first + n as u64,
                    payload: payload.to_vec(),
                };
                sink.feed(Message::Binary(encode(&message)))
                    .await
                    .map_err(|e| e.to_string())?;
                if permits.available_permits() == 0 || n + 1 == total {
                    sink.flush().await.map_err(|e| e.to_string())?;
                }
            }
            Ok::<(), String>(())
        };
        let reader = async {
            let mut got = 0;
            while got < total {
                match stream.next().await {
                    Some(Ok(Message::Binary(bytes))) => {
                        decode(&bytes).ok_or("floor reply did not decode")?;
                        got += 1;
                        permits.add_permits(1);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("floor relay closed".into()),
                }
            }
            Ok::<(), String>(())
        };
        tokio::try_join!(writer, reader)?;
        self.next_id += total as u64;
        Ok(started.elapsed())
    }
}

/// Scenarios R1 and R2: sequential round trips and pipelined requests to one remote slave.
pub(crate) async fn remote(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let server = ServerProcess::distio(programs)?;
    let relay = ServerProcess::floor(programs)?;
    let master = Master::new();
    let slave: Slave = remote_slaves(&master, programs, server.port, 1)
        .await?
        .into_vec()
        .remove(0);
    let mut floor = FloorRemote::connect(relay.port).await?;
    let (payload, raw) = (bytes_payload(16), [7u8; 16]);
    for _ in 0..100 {
        echo(&slave, &payload).await?;
        floor.round_trip(&raw).await?;
    }
    let per = config.per_round(config.sequential);
    let (mut d, mut f) = (Vec::new(), Vec::new());
    let (mut dp, mut fp) = (Duration::ZERO, Duration::ZERO);
    let piped = config.per_round(config.pipelined);
    let (mut d_cpu, mut f_cpu) = ([0u64; 2], [0u64; 2]);
    for _ in 0..config.rounds {
        capped(config, "distio remote sequential", async {
            for _ in 0..per {
                let started = Instant::now();
                echo(&slave, &payload).await?;
                d.push(started.elapsed());
            }
            Ok(())
        })
        .await?;
        capped(config, "floor remote sequential", async {
            for _ in 0..per {
                f.push(floor.round_trip(&raw).await?);
            }
            Ok(())
        })
        .await?;
        let before = [cpu_ns("self"), cpu_ns(&server.pid())];
        dp += capped(
            config,
            "distio remote pipelined",
            distio_pipelined(&slave, piped, config.window, &payload),
        )
        .await?;
        let after = [cpu_ns("self"), cpu_ns(&server.pid())];
        for (sum, (a, b)) in d_cpu.iter_mut().zip(after.iter().zip(before)) {
            *sum += a.saturating_sub(b);
        }
        let before = [cpu_ns("self"), cpu_ns(&relay.pid())];
        fp += capped(
            config,
            "floor remote pipelined",
            floor.pipelined(piped, config.window, &raw),
        )
        .await?;
        let after = [cpu_ns("self"), cpu_ns(&relay.pid())];
        for (sum, (a, b)) in f_cpu.iter_mut().zip(after.iter().zip(before)) {
            *sum += a.saturating_sub(b);
        }
    }
    slave.close().await.map_err(|e| e.to_string())?;
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let total = piped * config.rounds;
    let per_request = |ns: u64| ns as f64 / 1e3 / total as f64;
    Ok(vec![
        Outcome::new(
            "R1. remote sequential round trip, median",
            "µs",
            micros(quantile(&mut d, 0.5)),
            micros(quantile(&mut f, 0.5)),
            Target::RatioAtMost(1.3),
        ),
        Outcome::new(
            "R1. remote sequential round trip, p99",
            "µs",
            micros(quantile(&mut d, 0.99)),
            micros(quantile(&mut f, 0.99)),
            Target::None,
        ),
        Outcome::new(
            "R2. remote pipelined, 1 slave",
            "req/s",
            rate(total, dp),
            rate(total, fp),
            Target::RatioAtLeast(0.5),
        ),
        Outcome::new(
            "R2. remote pipelined, master CPU per request",
            "µs",
            per_request(d_cpu[0]),
            per_request(f_cpu[0]),
            Target::None,
        ),
        Outcome::new(
            "R2. remote pipelined, server (relay) CPU per request",
            "µs",
            per_request(d_cpu[1]),
            per_request(f_cpu[1]),
            Target::None,
        ),
    ])
}

/// Scenario R3: start eight remote slaves and wait until each has answered once (a fresh
/// master, so the session is opened too).
pub(crate) async fn remote_spawn(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let server = ServerProcess::distio(programs)?;
    let relay = ServerProcess::floor(programs)?;
    let (mut d, mut f) = (Vec::new(), Vec::new());
    for _ in 0..config.spawns {
        let master = Master::new();
        d.push(
            capped(config, "distio remote spawn", async {
                let started = Instant::now();
                let slaves = remote_slaves(&master, programs, server.port, 8).await?;
                let replies = slaves.exec("noop", &()).await.map_err(|e| e.to_string())?;
                if !replies.errors().is_empty() {
                    return Err("remote slaves failed".to_owned());
                }
                let elapsed = started.elapsed();
                slaves.close().await.map_err(|e| e.to_string())?;
                Ok(elapsed)
            })
            .await?,
        );
        f.push(
            capped(config, "floor remote spawn", async {
                let started = Instant::now();
                let mut floors = Vec::new();
                for _ in 0..8 {
                    floors.push(FloorRemote::connect(relay.port).await?);
                }
                for floor in &mut floors {
                    floor.round_trip(&[]).await?;
                }
                Ok(started.elapsed())
            })
            .await?,
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(vec![Outcome::new(
        "R3. spawn 8 remote slaves until each answered",
        "ms",
        ms(quantile(&mut d, 0.5)),
        ms(quantile(&mut f, 0.5)),
        Target::AbsoluteAtMost(50.0),
    )])
}

/// Scenario R4: the server's peak memory with eight slaves under pipelined load.
pub(crate) async fn remote_memory(config: &Config, programs: &Programs) -> Result<Vec<Outcome>> {
    let server = ServerProcess::distio(programs)?;
    let relay = ServerProcess::floor(programs)?;
    let master = Master::new();
    let slaves = remote_slaves(&master, programs, server.port, 8).await?;
    let payload = bytes_payload(16);
    let load_for = Duration::from_secs_f64(config.memory_secs);
    capped(config, "distio remote memory load", async {
        let started = Instant::now();
        while started.elapsed() < load_for {
            let runs = slaves
                .iter()
                .map(|slave| distio_pipelined(slave, 2_000, 256, &payload));
            for run in futures_util::future::join_all(runs).await {
                run?;
            }
        }
        Ok(())
    })
    .await?;
    let distio = server.peak_rss_mib();
    slaves.close().await.map_err(|e| e.to_string())?;
    let mut floors = Vec::new();
    for _ in 0..8 {
        floors.push(FloorRemote::connect(relay.port).await?);
    }
    capped(config, "floor remote memory load", async {
        let started = Instant::now();
        while started.elapsed() < load_for {
            let runs = floors
                .iter_mut()
                .map(|f| f.pipelined(2_000, 256, &[7u8; 16]));
            for run in futures_util::future::join_all(runs).await {
                run?;
            }
        }
        Ok(())
    })
    .await?;
    let floor = relay.peak_rss_mib();
    Ok(vec![Outcome::new(
        "R4. peak RSS, server with 8 slaves under load",
        "MiB",
        distio,
        floor,
        Target::AbsoluteAtMost(16.0),
    )])
}

/// `distio-bench --serve-probe ROOT`: runs a `distio-serve` server on a loopback port
/// (printed on stdout) until stdin closes.
pub(crate) fn serve_probe(root: &Path) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let server = distio_serve::Server::builder()
            .address([127, 0, 0, 1].into())
            .port(0)
            .root(root)
            .max_concurrent_slaves(64)
            // Its own slaves, run as the user running it (root included), as local ones would be.
            .containment(distio_serve::Containment {
                allow_root_slaves: true,
                ..distio_serve::Containment::default()
            })
            .build()
            .await
            .map_err(|e| e.to_string())?;
        println!("{}", server.local_addr().port());
        let stop = server.shutdown_handle();
        tokio::task::spawn_blocking(move || {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
            stop.shutdown();
        });
        server.run().await.map_err(|e| e.to_string())
    })
}
