//! The server's errors (to be merged into the crate's one error enum).

use std::path::PathBuf;

/// Why the server could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The root directory is missing or unreadable.
    #[error("the root directory {} cannot be used: {source}", path.display())]
    Root {
        /// The configured root.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Accepting connections failed.
    #[error("the server stopped accepting connections: {0}")]
    Serve(#[source] std::io::Error),
}
