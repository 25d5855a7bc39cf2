//! `distio-serve`: hosts distio slaves for remote masters.
//!
//! For now it takes `--bind`, `--port` and `--root` (the full configuration loader comes
//! with the config work). SIGTERM or SIGINT stops it gracefully, with exit code 0.

use clap::Parser;
use distio_serve::Server;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Hosts distio slaves for remote masters over WebSockets.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// The port to listen on (0 picks a free one, printed at start).
    #[arg(long, default_value_t = 1337)]
    port: u16,
    /// The directory scripts are found under (default: the working directory).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Runs scripts with this extension with this interpreter, as EXT=PROGRAM (e.g.
    /// `sh=/bin/sh`); repeatable.
    #[arg(long = "interpreter", value_name = "EXT=PROGRAM")]
    interpreters: Vec<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("distio-serve: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("distio-serve: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = Server::builder()
        .address(args.bind)
        .port(args.port)
        .root(args.root);
    for mapping in &args.interpreters {
        let (ext, program) = mapping
            .split_once('=')
            .ok_or_else(|| format!("--interpreter {mapping:?} is not EXT=PROGRAM"))?;
        builder = builder.interpreter(ext, program);
    }
    let server = builder.build().await?;
    // Tests and scripts read the bound address from this line.
    println!("listening on {}", server.local_addr());
    let stop = server.shutdown_handle();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        stop.shutdown();
    });
    server.run().await?;
    Ok(())
}
