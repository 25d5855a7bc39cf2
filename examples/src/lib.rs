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

/// This example's own binary as a script for `distio-serve`: its file name, and the
/// directory it is in (to serve as the server's root). One binary is master, server and
/// slave.
///
/// ```no_run
/// let (script, root) = distio_examples::own_script()?;
/// assert!(root.join(&script).exists());
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub fn own_script() -> Result<(String, std::path::PathBuf), Box<dyn std::error::Error + Send + Sync>>
{
    let exe = std::env::current_exe()?;
    let script = exe
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or("the example's file name is not UTF-8")?
        .to_owned();
    let root = exe
        .parent()
        .ok_or("the example has no directory")?
        .to_owned();
    Ok((script, root))
}

/// The README's Rust examples, compiled as doctests so that they stay correct.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
