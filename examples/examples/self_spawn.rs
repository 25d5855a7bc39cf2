//! One binary, master and slave: the slave emits progress events while it works, and runs a
//! close hook when the master closes it.
//!
//! Run with `cargo run -p distio-examples --example self_spawn`.

use distio_master::prelude::*;
use distio_master::{Master, Output, SpawnOptions};
use distio_slave::{SlaveProcess, TaskContext};
use std::time::Duration;

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task("count to", |n: u32, ctx: TaskContext| async move {
            for i in 1..=n {
                tokio::time::sleep(Duration::from_millis(50)).await;
                ctx.slave().emit("progress", &(i, n))?;
            }
            Ok(format!("slave #{} counted to {n}", ctx.slave().id()))
        })
        .on_close(|slave| async move {
            // Stdout is prefixed with the slave's alias by the master.
            println!("slave #{} closing, goodbye", slave.id());
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
    println!(
        "master pid {}: spawning a copy of {}",
        std::process::id(),
        std::env::current_exe()?.display()
    );
    let master = Master::new();
    let worker = master
        .spawn(
            SpawnOptions::current_exe()?
                .alias("counter")
                .output(Output::Prefixed),
        )
        .await?;
    worker.ready().await?;
    println!(
        "slave #{} (pid {:?}) serves {:?}",
        worker.id(),
        worker.pid(),
        worker.task_names()
    );

    let mut progress = worker.subscribe("progress");
    let counting = tokio::spawn(worker.exec("count to", &5u32).into_future());
    while let Some(event) = progress.recv().await {
        let (i, n): (u32, u32) = event.decode()?;
        println!("progress {i}/{n}");
        if i == n {
            break;
        }
    }
    println!("{}", counting.await??.value::<String>()?);
    let status = worker.close().await?;
    println!(
        "slave exited: {}",
        status.map_or("unknown".into(), |s| s.to_string())
    );
    Ok(())
}
