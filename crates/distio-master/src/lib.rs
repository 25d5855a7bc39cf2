//! The distio master: spawns slave processes and talks to them.
//!
//! Not built yet. This crate will hold `Master`, the `Slave` handle, `SlaveArray`,
//! `Response` and `ResponseArray`: spawning local slaves over an inherited Unix socket pair,
//! requests with timeouts and catch-all handling, queries and lifecycle control.
