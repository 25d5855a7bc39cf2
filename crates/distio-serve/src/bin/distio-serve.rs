//! `distio-serve`: hosts distio slaves for remote masters.
//!
//! Loads the configuration (defaults < config file < `DISTIO_SERVE_…` environment < command
//! line; see `docs/serve.md`), installs the logger, and serves until SIGTERM or SIGINT, which
//! stop it gracefully with exit code 0. SIGHUP reads the TLS certificate and key again (open
//! sessions keep going; a pair that cannot be used is logged and the old one kept). Once it listens it prints `listening on ADDR` on
//! standard output (scripts and tests read the address from that line); logs go to standard
//! error. Exit codes: 0 stopped, `--help`, `--version` or `--print-config`; 64 a bad command
//! line; 78 a bad configuration; 1 anything else.

use std::io::Write;
use std::process::ExitCode;

use distio_serve::{LoadedConfig, ServeError, ServerBuilder, exit_code, init_logging};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let loaded = match distio_serve::load_from_args(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(err) => return fail(&err),
    };
    if loaded.print_config {
        return match loaded.config.to_toml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        };
    }
    init_logging(&loaded.config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&ServeError::Runtime(err)),
    };
    match runtime.block_on(serve(&loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Reports `err` (clap prints its own help, version and usage messages) and returns its exit
/// code.
fn fail(err: &ServeError) -> ExitCode {
    let code = exit_code(err);
    match err {
        // `--help` and `--version` go to stdout, usage errors to stderr, as clap formats them.
        ServeError::Usage(clap_err) => {
            let _ = clap_err.print();
        }
        err => eprintln!("distio-serve: {err}"),
    }
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn serve(loaded: &LoadedConfig) -> Result<(), ServeError> {
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Runtime)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Runtime)?;
    let server = ServerBuilder::from_loaded(loaded)?.build().await?;
    let addr = server.local_addr();
    // Tests and scripts read the bound address from this line.
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, root = %loaded.config.root.display(), "listening on {addr}");
    let stop = server.shutdown_handle();
    let tls = server.tls();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping");
                    break;
                }
                _ = hup.recv() => match &tls {
                    Some(tls) => match tls.reload() {
                        Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                        Err(err) => tracing::warn!("SIGHUP: kept the current TLS certificate: {err}"),
                    },
                    None => tracing::info!("SIGHUP: no TLS configured; nothing to reload"),
                },
            }
        }
        stop.shutdown();
    });
    server.run().await
}
