//! The command line of `distio-serve` (clap derive).

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use super::{LogFormat, LogLevel};
use crate::auth::PasswordHash;

/// The command-line arguments of `distio-serve`.
///
/// Every option overrides the same key from the config file and the environment. The original
/// Dist.io spellings `--logLevel` and `--maxConcurrentSlaves` are accepted as aliases, and
/// `--opt=value` works as well as `--opt value`.
///
/// ```
/// use clap::Parser;
/// let args = distio_serve::CliArgs::try_parse_from(
///     ["distio-serve", "--port=3000", "--logLevel=3", "--config=file.json"],
/// )?;
/// assert_eq!(args.port, Some(3000));
/// assert_eq!(args.config.as_deref(), Some(std::path::Path::new("file.json")));
/// # Ok::<(), clap::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, clap::Parser)]
#[command(
    name = "distio-serve",
    version,
    about = "Hosts distio slaves for remote masters over WebSockets.",
    long_about = "Hosts distio slaves for remote masters over WebSockets.\n\n\
        Settings come from, lowest precedence first: built-in defaults, the config file \
        (TOML, or the original Dist.io JSON file), DISTIO_SERVE_* environment variables, \
        and these options. See docs/serve.md for every key."
)]
pub struct CliArgs {
    /// Config file: TOML, or the original Dist.io JSON config when the name ends in `.json` or
    /// the content starts with `{`. Also read from DISTIO_SERVE_CONFIG.
    #[arg(long, short = 'c', value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,

    /// TCP port to listen on [default: 1337].
    #[arg(long, short = 'p', value_name = "PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,

    /// Directory that script paths are resolved beneath [default: the working directory].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,

    /// Log level: off, error, warn, info, debug, trace, or the original's 0-5 [default: info].
    #[arg(long = "log-level", visible_alias = "logLevel", value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,

    /// Log line format; json suits journald and Kubernetes [default: text].
    #[arg(long = "log-format", value_enum, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,

    /// How many slaves may run at once [default: number of CPUs x 4].
    #[arg(
        long = "max-concurrent-slaves",
        visible_alias = "maxConcurrentSlaves",
        value_name = "N"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_slaves: Option<usize>,

    /// Lifetime limit of a slave, e.g. 15min, 1h, or off [default: 15min].
    #[arg(long = "kill-slaves-after", value_name = "DURATION", value_parser = parse_lifetime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_slaves_after: Option<String>,

    /// Run scripts ending in .EXT with PROGRAM, e.g. `py=/usr/bin/python3`; repeatable. Any
    /// interpreter setting replaces the built-in table (py, js, sh).
    #[arg(long = "interpreter", value_name = "EXT=PROGRAM", value_parser = parse_interpreter)]
    #[serde(
        rename = "interpreters",
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_interpreters"
    )]
    pub interpreters: Vec<(String, PathBuf)>,

    /// Allow a non-loopback --bind without TLS: basic-auth credentials and sessions then cross
    /// the network in the clear. Only on a trusted network or behind a TLS proxy on this host.
    #[arg(long = "insecure-plaintext")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_plaintext: bool,

    /// Who slaves run as (the `[containment]` keys that have options).
    #[command(flatten)]
    #[serde(skip_serializing_if = "CliContainment::is_empty")]
    pub containment: CliContainment,

    /// TLS certificate and key files, and the client CA for mutual TLS.
    #[command(flatten)]
    #[serde(skip_serializing_if = "CliTls::is_empty")]
    pub tls: CliTls,
    /// Print the effective configuration as TOML (secrets shown as ***) and exit.
    #[arg(long = "print-config")]
    #[serde(skip)]
    pub print_config: bool,

    /// A subcommand instead of serving (none: serve).
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,
}

/// The subcommands of `distio-serve`; without one it serves.
///
/// ```
/// use clap::Parser;
/// let args = distio_serve::CliArgs::try_parse_from(["distio-serve", "list", "--json"])?;
/// assert!(matches!(args.command, Some(distio_serve::Command::Admin(_))));
/// let args = distio_serve::CliArgs::try_parse_from(["distio-serve", "--port", "4000"])?;
/// assert!(args.command.is_none());
/// # Ok::<(), clap::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// The operator's commands (status, list, kill, drain), talking to a running server.
    #[command(flatten)]
    Admin(crate::admin::AdminCommand),
    /// Read a password (one line) from standard input and print its PBKDF2 hash, the value
    /// for `basic_auth.password_hash`.
    HashPassword {
        /// PBKDF2 iterations, 600000 (OWASP's figure) to 10000000.
        #[arg(
            long,
            value_name = "N",
            default_value_t = PasswordHash::MIN_ITERATIONS,
            value_parser = clap::value_parser!(u32).range(
                i64::from(PasswordHash::MIN_ITERATIONS)..=i64::from(PasswordHash::MAX_ITERATIONS)
            )
        )]
        iterations: u32,
    },
}

/// The `[containment]` keys that have command-line options.
///
/// ```
/// use clap::Parser;
/// let args = distio_serve::CliArgs::try_parse_from(["distio-serve", "--run-as-user=nobody"])?;
/// assert_eq!(args.containment.run_as_user.as_deref(), Some("nobody"));
/// assert!(!args.containment.allow_root_slaves);
/// # Ok::<(), clap::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, clap::Args)]
pub struct CliContainment {
    /// Run slaves as this user (name or uid); needed when the server runs as root.
    #[arg(long = "run-as-user", value_name = "USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<String>,
    /// Run slaves as this group (name or gid) [default: the user's primary group].
    #[arg(long = "run-as-group", value_name = "GROUP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<String>,
    /// Let a server running as root run slaves as root (every script then owns the host).
    #[arg(long = "allow-root-slaves")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_root_slaves: bool,
}

impl CliContainment {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The TLS options of the command line, the `[tls]` table's keys.
///
/// ```
/// use clap::Parser;
/// let args = distio_serve::CliArgs::try_parse_from(
///     ["distio-serve", "--tls-cert", "cert.pem", "--tls-key", "key.pem"],
/// )?;
/// assert_eq!(args.tls.cert.as_deref(), Some(std::path::Path::new("cert.pem")));
/// # Ok::<(), clap::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, clap::Args)]
pub struct CliTls {
    /// TLS certificate chain (PEM) [config: tls.cert]; needs --tls-key. Serves wss://.
    #[arg(long = "tls-cert", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,

    /// TLS private key (PEM) of the certificate [config: tls.key].
    #[arg(long = "tls-key", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,

    /// CA certificates (PEM) that sign client certificates: masters without one are refused
    /// in the TLS handshake (mutual TLS) [config: tls.client_ca].
    #[arg(long = "tls-client-ca", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

impl CliTls {
    /// Whether no TLS option was given.
    pub fn is_empty(&self) -> bool {
        self.cert.is_none() && self.key.is_none() && self.client_ca.is_none()
    }
}

/// Reads an `--interpreter EXT=PROGRAM` value.
fn parse_interpreter(v: &str) -> Result<(String, PathBuf), String> {
    match v.split_once('=') {
        Some((ext, program)) if !ext.is_empty() && !program.is_empty() => Ok((
            ext.trim_start_matches('.').to_owned(),
            PathBuf::from(program),
        )),
        _ => Err(format!(
            "`{v}` is not EXT=PROGRAM; write e.g. `py=/usr/bin/python3`"
        )),
    }
}

/// `--interpreter` values, as the `interpreters` table.
fn serialize_interpreters<S: serde::Serializer>(
    pairs: &[(String, PathBuf)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(ext, program)| (ext, program)))
}

/// Checks a `--kill-slaves-after` value; the string itself goes on to the config layer.
fn parse_lifetime(v: &str) -> Result<String, String> {
    super::duration::parse_cli(v, true).map(|_| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_is_well_formed() {
        CliArgs::command().debug_assert();
    }

    #[test]
    fn original_spellings_work() {
        let args =
            CliArgs::try_parse_from(["x", "--port=3000", "--logLevel=3", "--config=file.json"])
                .unwrap();
        assert_eq!(args.port, Some(3000));
        assert_eq!(args.log_level, Some(LogLevel::Info));
        assert_eq!(args.config, Some(PathBuf::from("file.json")));
    }

    #[test]
    fn a_bad_lifetime_is_refused() {
        assert!(CliArgs::try_parse_from(["x", "--kill-slaves-after", "soon"]).is_err());
        let args = CliArgs::try_parse_from(["x", "--kill-slaves-after", "off"]).unwrap();
        assert_eq!(args.kill_slaves_after.as_deref(), Some("off"));
    }

    #[test]
    fn interpreters_and_plaintext_flags() {
        let args = CliArgs::try_parse_from([
            "x",
            "--interpreter",
            "sh=/bin/sh",
            "--interpreter=.rb=ruby",
            "--insecure-plaintext",
        ])
        .unwrap();
        assert_eq!(
            args.interpreters,
            [
                ("sh".to_owned(), PathBuf::from("/bin/sh")),
                ("rb".to_owned(), PathBuf::from("ruby"))
            ]
        );
        assert!(args.insecure_plaintext);
        assert!(CliArgs::try_parse_from(["x", "--interpreter", "sh"]).is_err());
        assert!(CliArgs::try_parse_from(["x", "--interpreter", "=x"]).is_err());
    }

    #[test]
    fn hash_password_is_a_subcommand_beside_the_flags() {
        let args = CliArgs::try_parse_from(["x", "hash-password"]).unwrap();
        assert_eq!(
            args.command,
            Some(Command::HashPassword {
                iterations: PasswordHash::MIN_ITERATIONS
            })
        );
        assert!(CliArgs::try_parse_from(["x", "hash-password", "--iterations", "1000"]).is_err());
        let args = CliArgs::try_parse_from(["x", "--port", "4000"]).unwrap();
        assert_eq!((args.port, args.command), (Some(4000), None));
    }

    #[test]
    fn help_mentions_every_option() {
        let help = CliArgs::command().render_long_help().to_string();
        for flag in [
            "--config",
            "--bind",
            "--port",
            "--root",
            "--log-level",
            "--log-format",
            "--max-concurrent-slaves",
            "--kill-slaves-after",
            "--interpreter",
            "--insecure-plaintext",
            "--tls-cert",
            "--tls-key",
            "--tls-client-ca",
            "--print-config",
            "hash-password",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
    }
}
