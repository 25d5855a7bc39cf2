//! The distio server: hosts slaves for remote masters.
//!
//! A master opens one WebSocket session to the server (`GET /session`) and runs all its
//! slaves on this host through it; the server starts each requested script as a local
//! slave process (with `distio-master`'s process code: the same inherited-socket
//! handshake, process groups, parent-death signal and group reaper) and relays its frames
//! between the session and the slave's socket without decoding them.
//!
//! The client names a script relative to the server's root; the server decides how it
//! runs (its interpreter map, a minimal environment, the root as working directory).
//! Its configuration (defaults, a TOML file or the original Dist.io JSON file,
//! `DISTIO_SERVE_…` environment variables and the command line, layered with `figment`)
//! and the access checks that guard the session route (an IP [`Allowlist`] and HTTP basic
//! authentication) are in [`config`] and [`auth`].
//!
//! ```no_run
//! use distio_serve::Server;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), distio_serve::ServeError> {
//! let server = Server::builder()
//!     .port(0)
//!     .root("/srv/slaves")
//!     .interpreter("sh", "/bin/sh")
//!     .max_concurrent_slaves(8)
//!     .kill_slaves_after(Some(Duration::from_secs(3600)))
//!     .build()
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! let stop = server.shutdown_handle();
//! tokio::spawn(async move {
//!     tokio::signal::ctrl_c().await.ok();
//!     stop.shutdown();
//! });
//! server.run().await
//! # }
//! ```
//!
//! The `distio-serve` binary is this, with logging and signals around it:
//! [`load_from_args`] (every layer of the configuration), then
//! [`ServerBuilder::from_loaded`] (every key mapped onto the builder, the session route
//! behind the allowlist and basic authentication). With a `[tls]` table the server speaks
//! `wss://` ([`ServerTls`]); without it a non-loopback address is refused unless
//! `insecure_plaintext` is set. Before a connection has authenticated, [`admission`] limits
//! it (a deadline, caps on such connections, penalties for addresses that keep failing). All errors are [`ServeError`];
//! [`exit_code`] maps each to the binary's exit code.
//!
//! ```
//! let loaded = distio_serve::load_from_args(["distio-serve", "--port", "4000"])?;
//! assert_eq!(loaded.config.port, 4000);
//! # Ok::<(), distio_serve::ServeError>(())
//! ```

pub mod admin;
pub mod admission;
pub mod auth;
pub mod config;
mod containment;
mod error;
mod logging;
pub mod notify;
mod server;
mod tls;

pub use admission::Admission;
pub use auth::{Access, Allowlist, AuthenticatedUser, Credentials};
pub use config::{
    AdmissionConfig, BasicAuth, CliArgs, CliContainment, CliTls, Command, Containment,
    LoadedConfig, LogFormat, LogLevel, Secret, ServeConfig, TlsConfig, load_from_args,
};
pub use error::{ServeError, TlsProblem, exit_code};
pub use logging::init_logging;
pub use server::{Server, ServerBuilder, ServerState, ShutdownHandle, router};
pub use tls::ServerTls;
