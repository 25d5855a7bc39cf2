//! The crate's one error type and the process exit code for each of its variants.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Exit code for a bad command line (`EX_USAGE` from `sysexits.h`).
const EX_USAGE: i32 = 64;
/// Exit code for a bad configuration (`EX_CONFIG` from `sysexits.h`).
const EX_CONFIG: i32 = 78;
/// Exit code for bad input data (`EX_DATAERR` from `sysexits.h`).
const EX_DATAERR: i32 = 65;

/// Everything that can stop `distio-serve` from starting or running.
///
/// Each message is a sentence that says what is wrong and names the key, entry or file it is about.
///
/// ```
/// let err = distio_serve::load_from_args(["distio-serve", "--root", "/no/such/dir"]).unwrap_err();
/// assert!(err.to_string().contains("/no/such/dir"));
/// assert_eq!(distio_serve::exit_code(&err), 78);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The command line could not be parsed (or `--help`/`--version` was asked for).
    #[error("{0}")]
    Usage(#[from] clap::Error),

    /// The configuration file could not be read or parsed.
    #[error("cannot use the configuration file {}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong, including the line where the parser gave up.
        reason: String,
    },

    /// A configuration key that `distio-serve` does not know.
    #[error(
        "unknown configuration key `{key}` in {origin}; remove it or check its spelling (docs/serve.md lists every key)"
    )]
    UnknownKey {
        /// The key as written where it came from (e.g. `DISTIO_SERVE_PROT` or `prot`).
        key: String,
        /// Where it came from: a file, the environment or the command line.
        origin: String,
    },

    /// A configuration key with a value of the wrong type or out of range.
    #[error("the configuration key `{key}` in {origin} is invalid: {reason}")]
    InvalidKey {
        /// The key as written where it came from.
        key: String,
        /// Where it came from: a file, the environment, the command line or the defaults.
        origin: String,
        /// What is wrong with the value and what is expected instead.
        reason: String,
    },

    /// The scripts root is missing or not a directory.
    #[error("the scripts root {} cannot be used: {reason}; set `root` to an existing directory", path.display())]
    Root {
        /// The configured root.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },

    /// An `authorized_ips` entry is a regular expression in the style of the original Dist.io.
    #[error("the authorized_ips entry `{entry}` is a regular expression, which distio-serve does not match; {}",
        match suggestion {
            Some(cidr) => format!("write `{cidr}` instead"),
            None => "write it as an IP address (e.g. `192.168.0.7`) or a CIDR range (e.g. `192.168.0.0/24`)".to_owned(),
        })]
    AllowlistRegex {
        /// The entry as written in the configuration.
        entry: String,
        /// The address or CIDR range that covers what the entry was meant to allow, where it could be derived.
        suggestion: Option<String>,
    },

    /// An `authorized_ips` entry that is neither an address nor a CIDR range.
    #[error(
        "the authorized_ips entry `{entry}` is neither an IP address nor a CIDR range; write e.g. `10.0.0.5` or `10.0.0.0/8`"
    )]
    AllowlistEntry {
        /// The entry as written in the configuration.
        entry: String,
    },

    /// The passphrase setting could not be turned into the server's key (a bad
    /// `passphrase_hash` given to the builder, or no randomness for the salt).
    #[error("the passphrase setting cannot be used: {0}")]
    Passphrase(#[source] distio_proto::ProtoError),

    /// `distio-serve hash-password` could not make a hash (empty or unreadable input, a bad
    /// `--iterations`).
    #[error("cannot hash the password: {reason}")]
    HashPassword {
        /// What was wrong with the input or the options; never the password.
        reason: String,
    },

    /// The system's random number generator failed (needed for the per-process credential key).
    #[error("the system random number generator failed; cannot set up basic authentication")]
    Random,

    /// The effective configuration could not be written as TOML.
    #[error("cannot print the configuration as TOML: {0}")]
    PrintConfig(#[from] toml::ser::Error),

    /// The server would listen on a non-loopback address without TLS, and nobody said that is
    /// intended.
    #[error(
        "refusing to listen on {addr} without TLS: basic-auth credentials and everything a session carries would cross the network in the clear; bind to a loopback address (127.0.0.1 or ::1), or set `insecure_plaintext = true` (--insecure-plaintext) if this network is trusted or a TLS proxy on this host fronts the server"
    )]
    Plaintext {
        /// The address asked for.
        addr: SocketAddr,
    },

    /// A TLS file (certificate chain, key or client CA) cannot be used.
    #[error("cannot use the TLS file {}: {problem}; fix it or change the `tls` settings", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        problem: TlsProblem,
    },

    /// rustls refused the TLS setup.
    #[error("cannot set up TLS: {0}; check the `tls` settings")]
    TlsSetup(String),

    /// The server could not listen on its address.
    #[error(
        "cannot listen on {addr}: {source}; choose another `bind` or `port`, or stop what uses it"
    )]
    Bind {
        /// The address it tried.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// The server runs as root and was not told whom to run slaves as.
    #[error(
        "refusing to run slaves as root: this server runs as root, so every script would own the host; set `containment.run_as_user` (--run-as-user) to an unprivileged user, or `containment.allow_root_slaves = true` (--allow-root-slaves) if that is really intended"
    )]
    RootSlaves,

    /// `run_as_user` or `run_as_group` names no user or group of this host.
    #[error(
        "the containment key `{key}` names `{name}`, which is not a {what} of this host ({file}); use an existing name or a numeric id"
    )]
    UnknownAccount {
        /// `run_as_user` or `run_as_group`.
        key: &'static str,
        /// The name as configured.
        name: String,
        /// `user` or `group`.
        what: &'static str,
        /// The file it was looked up in.
        file: &'static str,
    },

    /// The kernel cannot open scripts confined beneath the root (`openat2` is missing).
    #[error(
        "this kernel has no openat2(2) (Linux 5.6 or later is needed), so scripts cannot be opened without a symlink leading out of the root; distio-serve does not fall back to a racy check: run it on a newer kernel"
    )]
    NoOpenat2,

    /// Accepting connections failed while the server was running.
    #[error(
        "the server stopped accepting connections: {0}; check the process's file-descriptor limit (`ulimit -n`) and restart it"
    )]
    Serve(#[source] std::io::Error),

    /// The async runtime or the signal handlers could not be set up.
    #[error("cannot start the server's runtime: {0}")]
    Runtime(#[source] std::io::Error),

    /// The admin listener cannot listen on its address.
    #[error(
        "cannot listen for the admin endpoints on {addr}: {source}; choose another `admin_bind` or `admin_port`, or set `admin_port = 0` to turn them off"
    )]
    AdminBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },

    /// The control socket cannot be created.
    #[error(
        "cannot create the control socket {}: {source}; set `control_socket` to a path in a directory this user may write, or to \"off\"", path.display()
    )]
    ControlSocket {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// Something other than a socket is at the control socket's path.
    #[error(
        "{} exists and is not a socket; remove it or set `control_socket` to another path", path.display()
    )]
    ControlPathTaken {
        /// The path.
        path: PathBuf,
    },

    /// Another server answers on the control socket.
    #[error(
        "another distio-serve answers on the control socket {}; stop it, or give this server its own `control_socket` (and `admin_port`)", path.display()
    )]
    ControlInUse {
        /// The path.
        path: PathBuf,
    },

    /// The operator CLI found no control socket to use.
    #[error(
        "no control socket is known: pass --control-socket PATH, or set `control_socket` in the configuration (run as the server's user, or as root)"
    )]
    ControlUnknown,

    /// The operator CLI cannot talk to the server.
    #[error(
        "cannot talk to distio-serve on {}: {source}; is the server running, and may this user use the socket (its owner or group)? Name it with --control-socket", path.display()
    )]
    ControlConnect {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The server's answer on the control socket is not one the CLI understands.
    #[error(
        "the server's answer on the control socket cannot be read ({0}); is the server the same version as this command?"
    )]
    ControlReply(#[source] serde_json::Error),

    /// The server refused the operator's request.
    #[error("the server refused: {message}")]
    ControlRefused {
        /// The server's reason, as a sentence.
        message: String,
    },
}

/// What is wrong with a TLS file ([`ServeError::TlsFile`]).
///
/// ```
/// let problem = distio_serve::TlsProblem::NoPem;
/// assert!(problem.to_string().contains("PEM"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsProblem {
    /// The file cannot be read.
    #[error("it cannot be read ({0})")]
    Unreadable(std::io::ErrorKind),
    /// The file holds nothing PEM of the kind needed.
    #[error("it holds no PEM certificate or key of the kind needed")]
    NoPem,
    /// The file is not valid PEM.
    #[error("it is not valid PEM")]
    NotPem,
    /// The key's algorithm is not one rustls's ring provider supports.
    #[error("the key's type is not supported (use an ECDSA P-256/P-384, Ed25519 or RSA key)")]
    UnsupportedKey,
    /// The key is not the key of the chain's first certificate.
    #[error("this key does not belong to the first certificate of {}", cert.display())]
    KeyMismatch {
        /// The certificate chain file.
        cert: PathBuf,
    },
    /// A client CA certificate cannot be used as a trust anchor.
    #[error("a certificate in it cannot be used as a certificate authority")]
    BadCa,
}

/// The process exit code for an error.
///
/// - `0`: `--help` or `--version` was printed (not a failure);
/// - `64` (`EX_USAGE`): the command line could not be parsed;
/// - `78` (`EX_CONFIG`): the configuration is invalid (file, key, root, allowlist, credentials,
///   a non-loopback address without `insecure_plaintext`);
/// - `65` (`EX_DATAERR`): `hash-password` got no usable password or options;
/// - `1`: anything else (e.g. the port is already in use).
///
/// ```
/// let err = distio_serve::load_from_args(["distio-serve", "--port", "not-a-port"]).unwrap_err();
/// assert_eq!(distio_serve::exit_code(&err), 64);
/// ```
pub fn exit_code(err: &ServeError) -> i32 {
    use clap::error::ErrorKind;
    match err {
        ServeError::Usage(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
            _ => EX_USAGE,
        },
        ServeError::ConfigFile { .. }
        | ServeError::UnknownKey { .. }
        | ServeError::InvalidKey { .. }
        | ServeError::Root { .. }
        | ServeError::AllowlistRegex { .. }
        | ServeError::AllowlistEntry { .. }
        | ServeError::Passphrase(_)
        | ServeError::Plaintext { .. }
        | ServeError::RootSlaves
        | ServeError::UnknownAccount { .. }
        | ServeError::TlsFile { .. }
        | ServeError::TlsSetup(_) => EX_CONFIG,
        ServeError::HashPassword { .. } => EX_DATAERR,
        ServeError::Random
        | ServeError::PrintConfig(_)
        | ServeError::Bind { .. }
        | ServeError::Serve(_)
        | ServeError::Runtime(_)
        | ServeError::NoOpenat2
        | ServeError::AdminBind { .. }
        | ServeError::ControlSocket { .. }
        | ServeError::ControlInUse { .. }
        | ServeError::ControlConnect { .. }
        | ServeError::ControlReply(_)
        | ServeError::ControlRefused { .. } => 1,
        ServeError::ControlPathTaken { .. } | ServeError::ControlUnknown => EX_CONFIG,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_entry_message_shows_the_cidr() {
        let err = ServeError::AllowlistRegex {
            entry: r"192\.168\.0\.\d{1,3}".into(),
            suggestion: Some("192.168.0.0/24".into()),
        };
        let text = err.to_string();
        assert!(text.contains(r"192\.168\.0\.\d{1,3}"), "{text}");
        assert!(text.contains("write `192.168.0.0/24` instead"), "{text}");
        assert_eq!(exit_code(&err), EX_CONFIG);
    }

    #[test]
    fn other_errors_exit_with_one() {
        assert_eq!(exit_code(&ServeError::Random), 1);
        let in_use = ServeError::Bind {
            addr: "127.0.0.1:1337".parse().unwrap(),
            source: std::io::ErrorKind::AddrInUse.into(),
        };
        assert_eq!(exit_code(&in_use), 1);
        assert!(in_use.to_string().contains("127.0.0.1:1337"), "{in_use}");
    }

    #[test]
    fn plaintext_refusal_is_a_config_error_that_says_why() {
        let err = ServeError::Plaintext {
            addr: "0.0.0.0:1337".parse().unwrap(),
        };
        let text = err.to_string();
        assert!(text.contains("0.0.0.0:1337"), "{text}");
        assert!(text.contains("in the clear"), "{text}");
        assert!(text.contains("insecure_plaintext"), "{text}");
        assert_eq!(exit_code(&err), EX_CONFIG);
    }
}
