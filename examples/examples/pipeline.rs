//! A pipeline across three slaves, with intercepts that change the value, finish early and
//! fail with an error of their own.
//!
//! Run with `cargo run -p distio-examples --example pipeline`.

use distio_master::{Master, SpawnOptions};
use distio_patterns::prelude::*;
use distio_patterns::{Intercept, PatternError, Pipeline};
use distio_slave::SlaveProcess;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// An intercept's own error: the value it refused to pass on.
#[derive(Debug)]
struct Forbidden(String);

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refusing to go on with {:?}", self.0)
    }
}

impl std::error::Error for Forbidden {}

async fn slave() -> Result<(), Error> {
    SlaveProcess::new()
        .task(
            "task a",
            |s: String, _| async move { Ok(format!("{s} -> a")) },
        )
        .task(
            "task b",
            |s: String, _| async move { Ok(format!("{s} -> b")) },
        )
        .task(
            "task c",
            |s: String, _| async move { Ok(format!("{s} -> c")) },
        )
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
        .step("task a", &s[0])
        .step("task b", &s[1])
        .step("task c", &s[2]);
    println!("{}", plain.execute("start").await?.value::<String>()?);
    println!("{}", plain.execute("again").await?.value::<String>()?);

    let intercepted = Pipeline::new()
        .step("task a", &s[0])
        .intercept(|reply| match reply.value::<String>() {
            Ok(v) => Intercept::continue_with(reply, &format!("{v} (intercepted before b)")),
            Err(error) => Intercept::fail(error),
        })
        .step("task b", &s[1])
        .intercept(|reply| match reply.value::<String>() {
            Ok(v) if v.contains("intercepted before b") => {
                Intercept::finish_with(reply, "breaking the pipeline before c")
            }
            Ok(_) => Intercept::Continue(reply),
            Err(error) => Intercept::fail(error),
        })
        .step("task c", &s[2]);
    println!("{}", intercepted.execute("start").await?.value::<String>()?);

    let refused = Pipeline::new()
        .step("task a", &s[0])
        .intercept(|reply| match reply.value::<String>() {
            Ok(v) if v.starts_with("forbidden") => Intercept::fail(Forbidden(v)),
            _ => Intercept::Continue(reply),
        })
        .step("task b", &s[1]);
    match refused.execute("forbidden input").await {
        Err(PatternError::InterceptFailed { step, error }) => match error.downcast_ref() {
            Some(Forbidden(v)) => println!("refused after step {step}: {v:?}"),
            None => println!("failed after step {step}: {error}"),
        },
        other => println!("unexpected: {other:?}"),
    }

    s.close().await?;
    Ok(())
}
