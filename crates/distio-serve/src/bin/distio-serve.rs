//! `distio-serve`: hosts distio slaves for remote masters.
//!
//! Loads the configuration (defaults < config file < `DISTIO_SERVE_…` environment < command
//! line; see `docs/serve.md`), installs the logger, and serves until SIGTERM or SIGINT, which
//! stop it gracefully with exit code 0. SIGHUP reads the TLS certificate and key again (open
//! sessions keep going; a pair that cannot be used is logged and the old one kept). Once it listens it prints `listening on ADDR` on
//! standard output (scripts and tests read the address from that line); logs go to standard
//! error. With a subcommand it is instead a tool: `status`, `list`, `kill` and `drain` are
//! the operator's client of a running server's control socket, and
//! `hash-password [--iterations N]` reads a password line from standard input and prints its
//! hash for `basic_auth.password_hash` (see `docs/serve.md`). Exit codes: 0 stopped, `--help`,
//! `--version` or `--print-config`; 64 a bad command line; 65 `hash-password` got no usable
//! password; 78 a bad configuration; 1 anything else.
//!
//! Under systemd (`Type=notify`, see `deploy/systemd/`) it also sends `READY=1` once it
//! listens, `STOPPING=1` when a signal starts the drain, and `WATCHDOG=1` at half of
//! `WATCHDOG_USEC` when the unit sets a watchdog ([`distio_serve::notify`]).

use std::io::{IsTerminal, Write};

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use distio_serve::notify::{self, Notifier};
use distio_serve::{
    CliArgs, Command, LoadedConfig, ServeError, ServerBuilder, exit_code, init_logging,
};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let args = match CliArgs::try_parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(err) => return fail(&ServeError::Usage(err)),
    };
    if let Some(Command::HashPassword { iterations }) = args.command {
        return hash_password(iterations);
    }
    let loaded = match distio_serve::config::load(&args) {
        Ok(loaded) => loaded,
        Err(err) => return fail(&err),
    };
    if let Some(Command::Admin(command)) = &args.command {
        return match distio_serve::admin::run_command(command, &loaded.config) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        };
    }
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

/// `distio-serve hash-password`: the hash of the password on standard input, on standard
/// output; where it goes, on standard error.
fn hash_password(iterations: u32) -> ExitCode {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Type the password and press Enter (it is shown as you type):");
    }
    match distio_serve::auth::hash_password_from(stdin.lock(), iterations) {
        Ok(hash) => {
            println!("{hash}");
            eprintln!(
                "Put this value in the configuration file as `password_hash` under [basic_auth] \
                 (in place of `password`; or DISTIO_SERVE_BASIC_AUTH__PASSWORD_HASH), or, for \
                 the passphrase mode, as `passphrase_hash` (or DISTIO_SERVE_PASSPHRASE_HASH)."
            );
            ExitCode::SUCCESS
        }
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
    let admin = distio_serve::admin::start(&loaded.config, server.state(), stop.clone()).await?;
    if let Some(admin_addr) = admin.http_addr() {
        // Tests and scripts read the admin address from this line (nobody may be reading).
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "admin on {admin_addr}").and_then(|()| stdout.flush());
    }
    let tls = server.tls();
    let stopping = notifier.clone();
    let signals = tokio::spawn(async move {
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
        if let Some(notifier) = &stopping {
            send(notifier, "STOPPING=1", Notifier::stopping);
        }
        stop.shutdown();
    });
    let result = server.run().await;
    admin.stop().await;
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
