//! Distributed patterns over distio slaves.
//!
//! Not built yet. This crate will hold the `Transport` trait and the parallel, pipeline,
//! workpool and scatter patterns written against it.
