//! The reference README's remote hello world, on one machine: a `distio-serve` server, five
//! slaves on it started by a master over one WebSocket session, "say hello" broadcast to
//! them all, then one of them asked alone.
//!
//! Run with `cargo run -p distio-examples --example remote`. It starts a server in this
//! process on a free loopback port, with the directory of this example's binary as its
//! root, and names the binary itself as the script (one binary is master, server and
//! slave). To use a server of your own instead, start it in that directory and pass its
//! URL: `distio-serve --root target/debug/examples --port 1337`, then
//! `cargo run -p distio-examples --example remote -- ws://127.0.0.1:1337`.

use distio_master::prelude::*;
use distio_master::{Master, SpawnOptions, Target};
use distio_slave::{SlaveProcess, TaskContext};

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task("say hello", |_: (), ctx: TaskContext| async move {
            let me = ctx.slave();
            Ok(format!(
                "Hello from {} (server id {:?}, proxied: {})",
                me.id(),
                me.server_id(),
                me.was_proxied()
            ))
        })
        .serve()
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    distio_examples::init_logging();
    if distio_slave::launched_as_slave() {
        return slave().await;
    }
    let (script, root) = distio_examples::own_script()?;

    // A server of our own, unless one was named.
    let (host, server) = match std::env::args().nth(1) {
        Some(url) => (url, None),
        None => {
            let server = distio_serve::Server::builder()
                .port(0)
                .root(&root)
                // Its own slaves, run as the user running it (root included), as local ones would be.
                .containment(distio_serve::Containment {
                    allow_root_slaves: true,
                    ..distio_serve::Containment::default()
                })
                .build()
                .await?;
            let host = format!("ws://{}", server.local_addr());
            let stop = server.shutdown_handle();
            let running = tokio::spawn(server.run());
            (host, Some((stop, running)))
        }
    };
    println!("distio-serve at {host}; starting 5 copies of {script} there");

    let master = Master::new();
    let slaves = master
        .spawn_many(5, SpawnOptions::remote(&host, &script).group("hello"))
        .await?;
    for slave in &slaves {
        println!(
            "  slave #{} is {} (pid {:?} there)",
            slave.id(),
            slave.location(),
            slave.pid()
        );
    }

    // Broadcast to the group; the request is encoded once.
    let all = master
        .tell(Target::group("hello"))
        .to("say hello", &())
        .await?;
    println!("{}", all.join_values::<String>("\n")?);

    // One slave, by id.
    let first = master.slave(slaves[0].id()).ok_or("slave 0 is gone")?;
    println!("{}", first.exec("say hello", &()).await?.value::<String>()?);
    println!("remote slaves: {}", master.all().remote().len());

    master.close_all().await?;
    if let Some((stop, running)) = server {
        stop.shutdown();
        running.await??;
    }
    Ok(())
}
