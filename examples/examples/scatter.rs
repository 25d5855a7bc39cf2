//! Scatter a list over two slaves: round robin, then in chunks.
//!
//! Run with `cargo run -p distio-examples --example scatter`.

use distio_master::{Master, SpawnOptions};
use distio_patterns::Scatter;
use distio_slave::{SlaveProcess, TaskContext};

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task("double", |n: u64, ctx: TaskContext| async move {
            Ok(format!(
                "slave #{} doubled {n} to {}",
                ctx.slave().id(),
                n * 2
            ))
        })
        .task("sum", |ns: Vec<u64>, ctx: TaskContext| async move {
            Ok(format!(
                "slave #{} summed {ns:?} to {}",
                ctx.slave().id(),
                ns.iter().sum::<u64>()
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
    let master = Master::new();
    let slaves = master.spawn_many(2, SpawnOptions::current_exe()?).await?;
    let data: Vec<u64> = (1..=10).collect();

    println!("round robin, one request per item:");
    for line in Scatter::new("double")
        .data(&data)?
        .gather(&slaves)
        .await?
        .values::<String>()?
    {
        println!("  {line}");
    }
    println!("chunked, one contiguous part per slave:");
    for line in Scatter::new("sum")
        .chunk(true)
        .data(&data)?
        .gather(&slaves)
        .await?
        .values::<String>()?
    {
        println!("  {line}");
    }
    slaves.close().await?;
    Ok(())
}
