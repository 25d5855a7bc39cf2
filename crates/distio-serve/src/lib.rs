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
//!
//! ```no_run
//! use distio_serve::Server;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), distio_serve::ServerError> {
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

mod server;

pub use server::{Server, ServerBuilder, ServerError, ServerState, ShutdownHandle, router};
