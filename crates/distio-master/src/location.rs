//! Where a slave runs.

use std::fmt;
use std::path::PathBuf;

/// Where a slave runs.
///
/// ```
/// use distio_master::Location;
/// let here = Location::Local { path: "./worker".into() };
/// assert_eq!(here.to_string(), "./worker");
/// let there = Location::Remote { host: "ws://build-7:1337".into(), script: "square.sh".into() };
/// assert_eq!(there.to_string(), "square.sh on ws://build-7:1337");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A process on this machine, started from `path`.
    Local {
        /// The executable.
        path: PathBuf,
    },
    /// A slave a `distio-serve` host runs for this master.
    Remote {
        /// The host, as `ws://[user@]host:port` (never with the password).
        host: String,
        /// The script, relative to the server's root.
        script: String,
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
            Location::Remote { host, script } => write!(f, "{script} on {host}"),
            Location::Attached { description } => f.write_str(description),
        }
    }
}
