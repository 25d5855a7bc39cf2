//! `distio-serve`: hosts distio slaves for remote masters.
//!
//! Loads the configuration (defaults < config file < `DISTIO_SERVE_…` environment < command
//! line; see `docs/serve.md`), installs the logger, and serves until SIGTERM or SIGINT, which
//! stop it gracefully with exit code 0. Once it listens it prints `listening on ADDR` on
//! standard output (scripts and tests read the address from that line); logs go to standard
//! error. Exit codes: 0 stopped, `--help`, `--version` or `--print-config`; 64 a bad command
//! line; 78 a bad configuration; 1 anything else.
//!
//! Under systemd (`Type=notify`, see `deploy/systemd/`) it also sends `READY=1` once it
//! listens, `STOPPING=1` when a signal starts the drain, and `WATCHDOG=1` at half of
//! `WATCHDOG_USEC` when the unit sets a watchdog ([`distio_serve::notify`]).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use distio_serve::notify::{self, Notifier};
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
    let server = ServerBuilder::from_loaded(loaded)?.build().await?;
    let addr = server.local_addr();
    // Tests and scripts read the bound address from this line.
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, root = %loaded.config.root.display(), "listening on {addr}");
    // systemd (`Type=notify`): ready once listening, stopping when the drain starts, and the
    // watchdog petted while the runtime runs. Absent outside systemd; never fatal.
    let notifier = Notifier::from_env().map(Arc::new);
    if let Some(notifier) = &notifier {
        send(notifier, "READY=1", Notifier::ready);
        let _ = notifier.status(&format!("listening on {addr}"));
    }
    let watchdog = match (&notifier, notify::watchdog_interval()) {
        (Some(notifier), Some(every)) => Some(tokio::spawn(pet_watchdog(notifier.clone(), every))),
        _ => None,
    };
    let stop = server.shutdown_handle();
    let stopping = notifier.clone();
    let signals = tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        if let Some(notifier) = &stopping {
            send(notifier, "STOPPING=1", Notifier::stopping);
        }
        stop.shutdown();
    });
    let result = server.run().await;
    // The binary owns both tasks: neither outlives the server.
    signals.abort();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    result
}

/// Sends one notification, logging (not failing) when systemd cannot be told.
fn send(notifier: &Notifier, what: &str, how: fn(&Notifier) -> std::io::Result<()>) {
    if let Err(err) = how(notifier) {
        tracing::warn!(socket = notifier.socket_name(), %err, "could not tell systemd {what}");
    }
}

/// Sends `WATCHDOG=1` every `every` (half of systemd's `WATCHDOG_USEC`) until aborted. A
/// failed send is logged once, not at every tick.
async fn pet_watchdog(notifier: Arc<Notifier>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        ticks.tick().await;
        match notifier.watchdog() {
            Ok(()) => warned = false,
            Err(err) if !warned => {
                warned = true;
                tracing::warn!(socket = notifier.socket_name(), %err, "could not pet the systemd watchdog");
            }
            Err(_) => {}
        }
    }
}
