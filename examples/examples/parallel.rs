//! A parallel set of tasks, run once, then in a loop with `times`, on the least busy slaves.
//!
//! Run with `cargo run -p distio-examples --example parallel`.

use distio_master::{Master, SpawnOptions};
use distio_patterns::{Parallel, Pick};
use distio_slave::{SlaveProcess, TaskContext};

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task("foo", |n: u64, ctx: TaskContext| async move {
            Ok((ctx.slave().id(), n + 1))
        })
        .task("bar", |n: u64, ctx: TaskContext| async move {
            Ok((ctx.slave().id(), n * 2))
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
    let master = Master::new();
    let slaves = master.spawn_many(5, SpawnOptions::current_exe()?).await?;

    let mut parallel = Parallel::new();
    let foo_task = parallel.add("foo", &1u64, Pick::least_busy(&slaves))?;
    parallel.add("bar", &1u64, Pick::least_busy(&slaves))?;
    println!(
        "once: {:?}",
        parallel.execute().await?.values::<(u64, u64)>()?
    );

    let runs = parallel.times(100).await?;
    let sent: usize = runs.iter().map(|r| r.len()).sum();
    println!("times(100): {} result sets, {sent} requests", runs.len());

    parallel.remove(foo_task);
    println!(
        "without foo: {:?}",
        parallel.execute().await?.values::<(u64, u64)>()?
    );
    slaves.close().await?;
    Ok(())
}
