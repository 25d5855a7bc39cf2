//! The distio server: hosts slaves for remote masters.
//!
//! This crate is growing in parts. What is here now is the server's configuration (defaults,
//! a TOML file or the original Dist.io JSON file, `DISTIO_SERVE_…` environment variables and
//! the command line, layered with `figment`), its logging setup, and the access checks that
//! guard the WebSocket route: an IP [`Allowlist`] and HTTP basic authentication.
//!
//! ```
//! let loaded = distio_serve::load_from_args(["distio-serve", "--port", "4000"])?;
//! assert_eq!(loaded.config.port, 4000);
//! # Ok::<(), distio_serve::ServeError>(())
//! ```

pub mod auth;
pub mod config;
mod error;
mod logging;

pub use auth::{Access, Allowlist, AuthenticatedUser, Credentials};
pub use config::{
    BasicAuth, CliArgs, LoadedConfig, LogFormat, LogLevel, Secret, ServeConfig, load_from_args,
};
pub use error::{ServeError, exit_code};
pub use logging::init_logging;
