//! The server's configuration: [`ServeConfig`] (plain data) and how it is loaded.
//!
//! Sources, lowest precedence first: built-in defaults, a config file (TOML, or the original
//! Dist.io JSON file), `DISTIO_SERVE_…` environment variables, the command line. See
//! [`load_from_args`] and `docs/serve.md`.

mod admission;
mod cli;
mod containment;
mod duration;
mod legacy;
mod load;
mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use admission::AdmissionConfig;
pub use cli::{CliArgs, CliContainment, CliTls, Command};
pub use containment::Containment;
pub use load::{LoadedConfig, load, load_from_args};
pub use tls::TlsConfig;

/// The effective configuration of a `distio-serve` process.
///
/// Every field has a default (see [`ServeConfig::default`] and `docs/serve.md`); a config file
/// only needs the keys it changes. Unknown keys are refused.
///
/// ```
/// let config: distio_serve::ServeConfig = toml::from_str("port = 4000\nqueue_timeout = \"1min\"")?;
/// assert_eq!(config.port, 4000);
/// assert_eq!(config.queue_timeout, std::time::Duration::from_secs(60));
/// assert_eq!(config.bind.to_string(), "127.0.0.1");
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// The address to listen on. Default `127.0.0.1` (loopback only).
    pub bind: IpAddr,
    /// The TCP port to listen on. Default `1337`.
    pub port: u16,
    /// The directory that scripts are resolved beneath. Default: the working directory.
    /// Checked at load (it must exist and be a directory) and made absolute.
    pub root: PathBuf,
    /// IP addresses and CIDR ranges allowed to connect. Default empty: everyone may connect.
    pub authorized_ips: Vec<String>,
    /// How many slaves may run at once. Default: the number of CPUs × 4. At least 1.
    pub max_concurrent_slaves: usize,
    /// How many spawns may wait for a place when all are taken. Default 256; `0` refuses a spawn
    /// at once when there is no place.
    pub queue_limit: usize,
    /// How long a spawn may wait for a place before it fails. Default 30 s.
    #[serde(with = "duration::required")]
    pub queue_timeout: Duration,
    /// How long a slave may live before it is ended. Default 15 min; `None` (`"off"` in a file,
    /// or a zero duration) means no limit.
    #[serde(with = "duration::optional")]
    pub kill_slaves_after: Option<Duration>,
    /// How long a slave has between SIGTERM and SIGKILL when it is ended. Default 5 s.
    #[serde(with = "duration::required")]
    pub kill_grace: Duration,
    /// How often each side of a session pings the other. Default 5 s.
    #[serde(with = "duration::required")]
    pub heartbeat_interval: Duration,
    /// How many heartbeats in a row may go unanswered before a session is ended. Default 3.
    pub heartbeat_misses: u32,
    /// How long the server waits for slaves to end when it stops. Default 10 s.
    #[serde(with = "duration::required")]
    pub shutdown_grace: Duration,
    /// The largest frame accepted from a master or a slave, in bytes.
    /// Default [`distio_proto::DEFAULT_MAX_FRAME_LEN`].
    pub max_frame_len: usize,
    /// How many slaves one session may have starting or running at once. Default 1024.
    pub max_channels_per_session: usize,
    /// How long a new connection has to open its session before it is closed. Default 10 s.
    #[serde(with = "duration::required")]
    pub open_timeout: Duration,
    /// Most bytes waiting to be written to one session's WebSocket. Default 8 MiB. When it is
    /// full, slaves' frames wait for room and their output lines are dropped (and counted).
    pub outbox_limit: usize,
    /// How long a session's WebSocket may take no bytes at all (the client does not read)
    /// before the session ends and its slaves are killed. Default 30 s; above zero.
    #[serde(with = "duration::required")]
    pub client_stall_timeout: Duration,
    /// How long a session with no slaves may send no frame before the server closes it.
    /// Default 10 min; `None` (`"off"` or zero) means never.
    #[serde(with = "duration::optional")]
    pub idle_session_timeout: Option<Duration>,
    /// Most bytes of frames waiting to be written to one slave's socket. Default 8 MiB.
    pub slave_inbox_limit: usize,
    /// How long a session whose connection dropped keeps its slaves, waiting for its master
    /// to resume it over a new connection. Default 30 s; zero turns resuming off (a dropped
    /// connection ends the session at once).
    #[serde(with = "duration::required")]
    pub resume_grace: Duration,
    /// Most bytes of frames a session keeps, sent but not yet acknowledged by its master, to
    /// send again on a resume. Default 32 MiB. A master that acknowledges too slowly for
    /// it (within a heartbeat limit) has its session ended.
    pub resume_buffer: usize,
    /// Allow listening on an address that is not loopback without TLS. Default `false`: with
    /// no `[tls]` table the server refuses to start there, because basic-auth credentials and
    /// sessions would cross the network in the clear.
    pub insecure_plaintext: bool,
    /// The address of the admin listener (`/healthz`, `/readyz`, `/metrics`). Default
    /// `127.0.0.1` (loopback only).
    pub admin_bind: IpAddr,
    /// The port of the admin listener. Default `9337`; `0` turns the listener off.
    pub admin_port: u16,
    /// The operator's control socket (`distio-serve status|list|kill|drain`). Default:
    /// `control.sock` in `$RUNTIME_DIRECTORY` under systemd, else
    /// `/run/distio-serve/control.sock` as root, else
    /// `$XDG_RUNTIME_DIR/distio-serve/control.sock`; `"off"` turns it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_socket: Option<PathBuf>,
    /// How much is logged. Default `info`.
    pub log_level: LogLevel,
    /// How log lines are written. Default `text`.
    pub log_format: LogFormat,
    /// A name shown to masters. Default: the host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Credentials that masters must present (HTTP basic authentication). Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// TLS: the certificate chain and key, and the client CA for mutual TLS. Default none
    /// (plain WebSockets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Limits that hold before a connection has authenticated (deadline, caps, penalties).
    pub admission: AdmissionConfig,
    /// The passphrase masters must prove they know (the passphrase mode: it never crosses
    /// the network, and every session is sealed with keys derived from it). Default none.
    /// A plain passphrase in the configuration logs a warning at start; prefer
    /// `passphrase_hash`. With `basic_auth` too, both are required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<Secret>,
    /// The passphrase as its key, `$pbkdf2-sha256$i=ITERATIONS$SALT$KEY`
    /// (see `distio_proto::remote::passphrase::PassphraseKey`). As secret as the passphrase
    /// itself: whoever has it can open sessions. Not together with `passphrase`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_hash: Option<Secret>,
    /// Script extension (without the dot) → interpreter that runs it. A script whose extension is
    /// not listed runs directly if it is executable. Default `py` → `python3`, `js` → `node`,
    /// `sh` → `/bin/sh`.
    pub interpreters: BTreeMap<String, PathBuf>,
    /// Who slaves run as, their resource limits and cgroups (the `[containment]` table).
    pub containment: Containment,
}

impl Default for ServeConfig {
    /// The built-in defaults. `root` is the working directory at the time of the call.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let interpreters = [("py", "python3"), ("js", "node"), ("sh", "/bin/sh")]
            .into_iter()
            .map(|(ext, program)| (ext.to_owned(), PathBuf::from(program)))
            .collect();
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 1337,
            root: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            authorized_ips: Vec::new(),
            max_concurrent_slaves: cpus.saturating_mul(4),
            queue_limit: 256,
            queue_timeout: Duration::from_secs(30),
            kill_slaves_after: Some(Duration::from_secs(15 * 60)),
            kill_grace: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_misses: 3,
            shutdown_grace: Duration::from_secs(10),
            max_frame_len: distio_proto::DEFAULT_MAX_FRAME_LEN,
            max_channels_per_session: 1024,
            open_timeout: Duration::from_secs(10),
            outbox_limit: 8 << 20,
            client_stall_timeout: Duration::from_secs(30),
            idle_session_timeout: Some(Duration::from_secs(10 * 60)),
            slave_inbox_limit: 8 << 20,
            resume_grace: Duration::from_secs(30),
            resume_buffer: 32 << 20,
            insecure_plaintext: false,
            admin_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            admin_port: 9337,
            control_socket: None,
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            server_name: None,
            basic_auth: None,
            tls: None,
            admission: AdmissionConfig::default(),
            passphrase: None,
            passphrase_hash: None,
            interpreters,
            containment: Containment::default(),
        }
    }
}

impl ServeConfig {
    /// The socket address to listen on: `bind` and `port`.
    ///
    /// ```
    /// let config = distio_serve::ServeConfig::default();
    /// assert_eq!(config.socket_addr().to_string(), "127.0.0.1:1337");
    /// ```
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// The configuration as TOML, with every secret written as `***`.
    ///
    /// ```
    /// use distio_serve::{BasicAuth, ServeConfig};
    /// let config = ServeConfig {
    ///     basic_auth: Some(BasicAuth::with_password("ops", "hunter2")),
    ///     ..ServeConfig::default()
    /// };
    /// let text = config.to_toml()?;
    /// assert!(text.contains("password = \"***\""));
    /// assert!(!text.contains("hunter2"));
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn to_toml(&self) -> Result<String, crate::ServeError> {
        Ok(toml::to_string_pretty(self)?)
    }
}

/// Basic-authentication credentials that masters must present.
///
/// ```
/// let auth: distio_serve::BasicAuth = toml::from_str("username = \"ops\"\npassword = \"a:b\"")?;
/// assert_eq!(auth.password.as_ref().map(|p| p.expose()), Some("a:b"));
/// assert!(!format!("{auth:?}").contains("a:b"));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name. It must not be empty and must not contain `:`.
    pub username: String,
    /// The password in plain text (the server warns at start): prefer `password_hash`.
    /// Exactly one of the two is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The password's PBKDF2 hash, `$pbkdf2-sha256$i=N$SALT$HASH`, as printed by
    /// `distio-serve hash-password` (see [`PasswordHash`](crate::auth::PasswordHash)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<Secret>,
}

impl BasicAuth {
    /// Credentials with a plain-text password.
    ///
    /// ```
    /// let auth = distio_serve::BasicAuth::with_password("ops", "pw");
    /// assert_eq!(auth.password.as_ref().map(|p| p.expose()), Some("pw"));
    /// ```
    pub fn with_password(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Some(Secret::new(password)),
            password_hash: None,
        }
    }

    /// Credentials checked against a password hash.
    ///
    /// ```
    /// use distio_serve::{BasicAuth, auth::PasswordHash};
    /// let hash = PasswordHash::derive(b"pw", PasswordHash::MIN_ITERATIONS)?;
    /// let auth = BasicAuth::with_hash("ops", &hash);
    /// assert!(auth.password.is_none() && auth.password_hash.is_some());
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn with_hash(username: impl Into<String>, hash: &crate::auth::PasswordHash) -> Self {
        Self {
            username: username.into(),
            password: None,
            password_hash: Some(Secret::new(hash.to_string())),
        }
    }
}

/// A secret string: never shown by `Debug`, `Display` or `Serialize` (all print `***`).
///
/// ```
/// let secret = distio_serve::Secret::new("hunter2");
/// assert_eq!(format!("{secret} {secret:?}"), "*** ***");
/// assert_eq!(secret.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Use it only to check credentials; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// How much the server logs.
///
/// Written as a name (`off`, `error`, `warn`, `info`, `debug`, `trace`) or, as in the original
/// Dist.io, a number: `0` error, `1` warn, `2`–`4` info, `5` debug.
///
/// ```
/// use distio_serve::LogLevel;
/// assert_eq!("debug".parse::<LogLevel>(), Ok(LogLevel::Debug));
/// assert_eq!("3".parse::<LogLevel>(), Ok(LogLevel::Info));
/// assert!("loud".parse::<LogLevel>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// Nothing is logged.
    Off,
    /// Errors only.
    Error,
    /// Warnings and errors (refused connections, failed authentication).
    Warn,
    /// Sessions, spawns and exits too.
    #[default]
    Info,
    /// Details for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    const NAMES: &'static [&'static str] = &["off", "error", "warn", "info", "debug", "trace"];

    /// The level's name as written in a config file.
    ///
    /// ```
    /// assert_eq!(distio_serve::LogLevel::Warn.name(), "warn");
    /// ```
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The level for one of the original Dist.io's numeric `logLevel` values (0 to 5).
    ///
    /// The original showed errors at 0, warnings from 1, connection events from 2–3,
    /// general information from 4 and verbose output at 5.
    ///
    /// ```
    /// use distio_serve::LogLevel;
    /// assert_eq!(LogLevel::from_number(0), Some(LogLevel::Error));
    /// assert_eq!(LogLevel::from_number(4), Some(LogLevel::Info));
    /// assert_eq!(LogLevel::from_number(6), None);
    /// ```
    pub fn from_number(n: i64) -> Option<Self> {
        match n {
            0 => Some(Self::Error),
            1 => Some(Self::Warn),
            2..=4 => Some(Self::Info),
            5 => Some(Self::Debug),
            _ => None,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            return Self::from_number(n)
                .ok_or_else(|| format!("log level {n} is out of range; use 0 to 5 or a name"));
        }
        let lower = s.to_ascii_lowercase();
        let index = Self::NAMES
            .iter()
            .position(|name| *name == lower)
            .ok_or_else(|| {
                format!(
                    "unknown log level `{s}`; use off, error, warn, info, debug, trace or 0 to 5"
                )
            })?;
        Ok([
            Self::Off,
            Self::Error,
            Self::Warn,
            Self::Info,
            Self::Debug,
            Self::Trace,
        ][index])
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LogLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a log level: off, error, warn, info, debug, trace, or a number 0 to 5")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LogLevel, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LogLevel, E> {
                LogLevel::from_number(v).ok_or_else(|| {
                    E::custom(format!(
                        "log level {v} is out of range; use 0 to 5 or a name"
                    ))
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LogLevel, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// How log lines are written (to standard error).
///
/// ```
/// let format: distio_serve::LogFormat = toml::from_str::<toml::Value>("f = \"json\"")?["f"]
///     .clone()
///     .try_into()?;
/// assert_eq!(format, distio_serve::LogFormat::Json);
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for journald, Kubernetes and log shippers.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = ServeConfig::default();
        assert_eq!(config.socket_addr().to_string(), "127.0.0.1:1337");
        assert_eq!(config.kill_slaves_after, Some(Duration::from_secs(900)));
        assert_eq!(config.queue_limit, 256);
        assert!(config.max_concurrent_slaves >= 4);
        assert_eq!(config.interpreters["py"], PathBuf::from("python3"));
    }

    #[test]
    fn secrets_never_show() {
        let config = ServeConfig {
            basic_auth: Some(BasicAuth::with_password("ops", "s3cr3t-pw")),
            ..ServeConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cr3t-pw"));
        assert!(!format!("{config:#?}").contains("s3cr3t-pw"));
        let toml = config.to_toml().unwrap();
        assert!(!toml.contains("s3cr3t-pw"), "{toml}");
        let config = ServeConfig {
            passphrase: Some(Secret::new("pass-phrase-1")),
            passphrase_hash: Some(Secret::new("$pbkdf2-sha256$i=600000$c2FsdA$a2V5")),
            ..ServeConfig::default()
        };
        let shown = format!("{config:?} {}", config.to_toml().unwrap());
        assert!(!shown.contains("pass-phrase-1"), "{shown}");
        assert!(!shown.contains("pbkdf2"), "{shown}");
        assert!(shown.contains("passphrase = \"***\""), "{shown}");
        assert!(toml.contains("***"), "{toml}");
        let hashed = ServeConfig {
            basic_auth: Some(BasicAuth {
                username: "ops".into(),
                password: None,
                password_hash: Some(Secret::new("$pbkdf2-sha256$i=600000$c2FsdA$aGFzaA")),
            }),
            ..ServeConfig::default()
        };
        for text in [
            format!("{hashed:?}"),
            format!("{hashed:#?}"),
            hashed.to_toml().unwrap(),
        ] {
            assert!(
                !text.contains("c2FsdA") && !text.contains("aGFzaA"),
                "{text}"
            );
        }
    }

    #[test]
    fn printed_config_reads_back() {
        let config = ServeConfig {
            kill_slaves_after: None,
            server_name: Some("box".into()),
            ..ServeConfig::default()
        };
        let back: ServeConfig = toml::from_str(&config.to_toml().unwrap()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn log_levels_by_name_and_number() {
        assert_eq!("WARN".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!("off".parse::<LogLevel>(), Ok(LogLevel::Off));
        assert_eq!("5".parse::<LogLevel>(), Ok(LogLevel::Debug));
        assert!("9".parse::<LogLevel>().is_err());
        let config: ServeConfig = toml::from_str("log_level = 1").unwrap();
        assert_eq!(config.log_level, LogLevel::Warn);
    }
}
