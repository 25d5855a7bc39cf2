//! Hello world with one slave.
//!
//! Run with `cargo run -p distio-examples --example hello`.

use distio_master::prelude::*;
use distio_master::{Master, SpawnOptions};
use distio_slave::SlaveProcess;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The slave: two tasks.
async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task("say hello", |_: (), _| async { Ok("Hello World!") })
        .task("say goodbye", |_: (), _| async { Ok("Goodbye World!") })
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
    let slave = master.spawn(SpawnOptions::current_exe()?).await?;

    let hello = master.tell(&slave).to("say hello", &()).await?;
    println!("{}", hello[0].value::<String>()?);
    let goodbye = slave.exec("say goodbye", &()).await?;
    println!("{}", goodbye.value::<String>()?);
    println!("(error: {:?})", goodbye.error());

    slave.close().await?;
    Ok(())
}
