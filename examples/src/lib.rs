//! Runnable distio examples; see the `examples/` folder of this package.
//!
//! Every example is one binary that is both the master and its slaves: started normally it
//! is the master, and the copies it spawns find they were launched as slaves
//! (`distio_slave::launched_as_slave`) and serve tasks instead.

/// Installs a log subscriber honouring `RUST_LOG` (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The README's Rust examples, compiled as doctests so that they stay correct.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
