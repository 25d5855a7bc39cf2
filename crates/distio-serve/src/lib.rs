//! The distio server: hosts slaves for remote masters.
//!
//! Being built in parts; this commit holds the crate's error type.

mod error;

pub use error::{ServeError, exit_code};
