//! A pipeline across three slaves, with intercepts that change the value and end early.
//!
//! Run with `cargo run -p distio-examples --example pipeline`.

use distio_master::{Master, SpawnOptions};
use distio_patterns::{Flow, Pipeline};
use distio_slave::SlaveProcess;

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task("task a", |s: String, _| async move {
            Ok::<_, String>(format!("{s} -> a"))
        })?
        .task("task b", |s: String, _| async move {
            Ok::<_, String>(format!("{s} -> b"))
        })?
        .task("task c", |s: String, _| async move {
            Ok::<_, String>(format!("{s} -> c"))
        })?
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
    let s = master.spawn_many(3, SpawnOptions::current_exe()?).await?;

    let plain = Pipeline::new()
        .step("task a", s[0].clone())
        .step("task b", s[1].clone())
        .step("task c", s[2].clone());
    println!("{}", plain.execute("start").await?.value::<String>()?);
    println!("{}", plain.execute("again").await?.value::<String>()?);

    let intercepted = Pipeline::new()
        .step("task a", s[0].clone())
        .intercept(|reply| {
            let v: String = reply.value().unwrap_or_default();
            let _ = reply.set_value(&format!("{v} (intercepted before b)"));
            Flow::Continue
        })
        .step("task b", s[1].clone())
        .intercept(|reply| {
            let v: String = reply.value().unwrap_or_default();
            if v.contains("intercepted before b") {
                let _ = reply.set_value("breaking the pipeline before c");
                return Flow::End;
            }
            Flow::Continue
        })
        .step("task c", s[2].clone());
    println!("{}", intercepted.execute("start").await?.value::<String>()?);

    s.close().await;
    Ok(())
}
