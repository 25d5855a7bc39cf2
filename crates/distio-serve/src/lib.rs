//! The distio server: hosts slaves for remote masters.
//!
//! Not built yet. This crate will hold an axum WebSocket server that spawns slaves on behalf
//! of authenticated masters (basic auth, IP allowlist), run as a systemd service.
