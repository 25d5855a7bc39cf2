//! The distio slave runtime.
//!
//! Not built yet. This crate will let a program register named async tasks and serve them
//! to the master that spawned it, with pause/resume, events and a close hook.
