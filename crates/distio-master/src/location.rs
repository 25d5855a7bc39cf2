//! Where a slave runs.

use std::fmt;
use std::path::PathBuf;

/// Where a slave runs.
///
/// ```
/// use distio_master::Location;
/// let here = Location::Local { path: "./worker".into() };
/// assert_eq!(here.to_string(), "./worker");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A process on this machine, started from `path`.
    Local {
        /// The executable.
        path: PathBuf,
    },
    /// A slave reached over a link the caller provided (see
    /// [`Master::attach`](crate::Master::attach)).
    Attached {
        /// What the caller said it is.
        description: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local { path } => write!(f, "{}", path.display()),
            Location::Attached { description } => f.write_str(description),
        }
    }
}
