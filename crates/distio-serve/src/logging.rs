//! Logging setup for the `distio-serve` binary (libraries only emit `tracing` events).

use tracing_subscriber::filter::LevelFilter;

use crate::{LogFormat, LogLevel, ServeConfig};

/// Installs the global `tracing` subscriber: level from `log_level`, text or JSON lines on
/// standard error from `log_format`. Does nothing if a subscriber is already installed.
///
/// ```
/// let config = distio_serve::ServeConfig {
///     log_format: distio_serve::LogFormat::Json,
///     ..Default::default()
/// };
/// distio_serve::init_logging(&config);
/// tracing::info!(port = config.port, "listening");
/// ```
pub fn init_logging(config: &ServeConfig) {
    let level = match config.log_level {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    // Colours only for a person at a terminal: journald and log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a tracing subscriber was already installed; keeping it");
    }
}
