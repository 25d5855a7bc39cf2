//! Five slaves: a broadcast to all of them, then a request to the slave with id 0.
//!
//! Run with `cargo run -p distio-examples --example five_slaves`.

use distio_master::prelude::*;
use distio_master::{Master, SpawnOptions};
use distio_slave::SlaveProcess;

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task("say hello", |_: (), ctx| async move {
            Ok(format!("Hello from {}", ctx.slave().id()))
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

    // One request to every slave; the data is encoded once.
    let responses = master.tell(&slaves).to("say hello", &()).await?;
    println!("{}", responses.join_strings(", ")?);
    println!(
        "average response time: {:?}",
        responses.average_response_time().unwrap_or_default()
    );

    // Only the slave with id 0.
    let first = master.slave(0).ok_or("slave 0 is not live")?;
    println!("{}", first.exec("say hello", &()).await?.value::<String>()?);

    slaves.close().await?;
    Ok(())
}
