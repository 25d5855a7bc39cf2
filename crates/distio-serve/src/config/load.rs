//! Loading: defaults < config file < environment < command line, then validation.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;
use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::{CliArgs, ServeConfig, legacy};
use crate::auth::Allowlist;
use crate::{ServeError, ServerTls};
use distio_proto::remote::passphrase::PassphraseKey;

/// Prefix of the environment variables read as configuration.
pub(super) const ENV_PREFIX: &str = "DISTIO_SERVE_";
/// The environment variable naming the config file (when `--config` is not given).
const ENV_CONFIG: &str = "DISTIO_SERVE_CONFIG";
/// Keys whose environment values are taken as written, never parsed as numbers or booleans
/// (a password `007` stays `007`).
const RAW_ENV_KEYS: &[&str] = &[
    "containment.run_as_user",
    "containment.run_as_group",
    "basic_auth.username",
    "basic_auth.password",
    "basic_auth.password_hash",
    "passphrase",
    "passphrase_hash",
    "server_name",
    "root",
    "tls.cert",
    "tls.key",
    "tls.client_ca",
];

/// Where a layer of configuration came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    File,
    Env,
    Cli,
}

impl Origin {
    fn name(self) -> &'static str {
        match self {
            Origin::File => "the configuration file",
            Origin::Env => "the environment",
            Origin::Cli => "the command line",
        }
    }

    fn of(metadata: &Metadata) -> Option<Self> {
        [Origin::File, Origin::Env, Origin::Cli]
            .into_iter()
            .find(|o| metadata.name == o.name())
    }
}

/// One layer of configuration values, with where they came from.
#[derive(Debug)]
pub(super) struct Layer {
    origin: Origin,
    file: Option<PathBuf>,
    dict: Dict,
}

impl Layer {
    pub(super) fn file(path: &Path, dict: Dict) -> Self {
        Self {
            origin: Origin::File,
            file: Some(path.to_owned()),
            dict,
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let metadata = Metadata::named(self.origin.name());
        match &self.file {
            Some(path) => metadata.source(path.as_path()),
            None => metadata,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The configuration a server starts with, as loaded and checked by [`load_from_args`].
///
/// ```
/// let loaded = distio_serve::load_from_args(["distio-serve", "--print-config"])?;
/// assert!(loaded.print_config);
/// assert!(loaded.allowlist.is_open());
/// assert!(loaded.config.root.is_absolute());
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadedConfig {
    /// The effective configuration: `root` canonical, `server_name` filled in.
    pub config: ServeConfig,
    /// `authorized_ips`, parsed.
    pub allowlist: Allowlist,
    /// The `[tls]` files, read and checked.
    pub tls: Option<ServerTls>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// `--print-config` was given: print [`ServeConfig::to_toml`] and exit 0 instead of serving.
    pub print_config: bool,
}

/// Parses a command line (the first item is the program name) and loads the configuration.
///
/// Reads the config file named by `--config` (or `DISTIO_SERVE_CONFIG`) and the `DISTIO_SERVE_…`
/// environment variables; see [`load`].
///
/// ```
/// let loaded = distio_serve::load_from_args(["distio-serve", "--port=3000", "--logLevel=0"])?;
/// assert_eq!(loaded.config.port, 3000);
/// assert_eq!(loaded.config.log_level, distio_serve::LogLevel::Error);
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
pub fn load_from_args<I, T>(args: I) -> Result<LoadedConfig, ServeError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    load(&CliArgs::try_parse_from(args)?)
}

/// Loads and checks the configuration for already parsed arguments.
///
/// Layers, lowest precedence first: [`ServeConfig::default`], the config file, the environment
/// (`DISTIO_SERVE_PORT`, `DISTIO_SERVE_BASIC_AUTH__USERNAME`: nested keys joined with `__`),
/// then `args`. Afterwards `root` must be an existing directory, `authorized_ips` must parse, and
/// numbers that must be positive are.
///
/// ```
/// let args = distio_serve::CliArgs { port: Some(4000), ..Default::default() };
/// assert_eq!(distio_serve::config::load(&args)?.config.port, 4000);
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
pub fn load(args: &CliArgs) -> Result<LoadedConfig, ServeError> {
    let config_file = args
        .config
        .clone()
        .or_else(|| std::env::var_os(ENV_CONFIG).map(PathBuf::from));
    let mut figment = Figment::new();
    if let Some(path) = &config_file {
        figment = figment.merge(read_file(path)?);
    }
    let cli = Value::serialize(args)
        .ok()
        .and_then(Value::into_dict)
        .unwrap_or_default();
    let figment = figment.merge(env_layer()).merge(Layer {
        origin: Origin::Cli,
        file: None,
        dict: cli,
    });
    let mut config: ServeConfig = figment.extract().map_err(from_figment)?;
    let allowlist = validate(&mut config, &figment)?;
    // Checked now, so that a bad file stops the start with its name (the key never shows).
    let tls = config.tls.as_ref().map(ServerTls::load).transpose()?;
    tracing::debug!(file = ?config_file, "configuration loaded");
    Ok(LoadedConfig {
        config,
        allowlist,
        tls,
        config_file,
        print_config: args.print_config,
    })
}

/// Reads the config file: the original's JSON format or TOML.
fn read_file(path: &Path) -> Result<Layer, ServeError> {
    let content = std::fs::read_to_string(path).map_err(|e| ServeError::ConfigFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
        || content.trim_start().starts_with('{');
    if is_json {
        return legacy::read(path, &content);
    }
    let dict: Dict = toml::from_str(&content).map_err(|e| ServeError::ConfigFile {
        path: path.to_owned(),
        reason: e.to_string().trim_end().to_owned(),
    })?;
    Ok(Layer::file(path, dict))
}

/// The `DISTIO_SERVE_…` variables (except `DISTIO_SERVE_CONFIG`), nested at `__`.
fn env_layer() -> Layer {
    let env = figment::providers::Env::prefixed(ENV_PREFIX)
        .split("__")
        .ignore(&["config"]);
    let mut dict = Dict::new();
    for (key, raw) in env.iter() {
        let key = key.as_str();
        let value = if RAW_ENV_KEYS.contains(&key) {
            Value::from(raw)
        } else {
            raw.parse().unwrap_or_else(|never| match never {})
        };
        let parts: Vec<&str> = key.split('.').collect();
        insert_path(&mut dict, &parts, value);
    }
    Layer {
        origin: Origin::Env,
        file: None,
        dict,
    }
}

fn insert_path(dict: &mut Dict, parts: &[&str], value: Value) {
    match parts {
        [] => {}
        [last] => {
            dict.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// Writes a key path the way it is spelled where it came from.
fn spell(origin: Option<Origin>, path: &[String]) -> String {
    match origin {
        Some(Origin::Env) => format!("{ENV_PREFIX}{}", path.join("__").to_ascii_uppercase()),
        Some(Origin::Cli) => format!("--{}", path.join(".").replace('_', "-")),
        Some(Origin::File) | None => path.join("."),
    }
}

fn describe(metadata: Option<&Metadata>) -> (Option<Origin>, String) {
    let Some(metadata) = metadata else {
        return (None, "the built-in defaults".to_owned());
    };
    let origin = Origin::of(metadata);
    let text = match (
        origin,
        metadata
            .source
            .as_ref()
            .and_then(figment::Source::file_path),
    ) {
        (Some(Origin::File), Some(path)) => format!("the configuration file {}", path.display()),
        _ => metadata.name.to_string(),
    };
    (origin, text)
}

/// Turns figment's error into a sentence naming the key and where it was set.
pub(super) fn from_figment(error: figment::Error) -> ServeError {
    let (origin, origin_text) = describe(error.metadata.as_ref());
    let mut path = error.path.clone();
    match &error.kind {
        Kind::UnknownField(name, _) => {
            push_unless_last(&mut path, name);
            ServeError::UnknownKey {
                key: spell(origin, &path),
                origin: origin_text,
            }
        }
        Kind::MissingField(name) => {
            push_unless_last(&mut path, name);
            ServeError::InvalidKey {
                key: spell(origin, &path),
                origin: origin_text,
                reason: "it is required here but missing".to_owned(),
            }
        }
        kind => ServeError::InvalidKey {
            key: spell(origin, &path),
            origin: origin_text,
            reason: kind.to_string(),
        },
    }
}

/// figment sometimes already ends the path with the field an error is about.
fn push_unless_last(path: &mut Vec<String>, name: &str) {
    if path.last().map(String::as_str) != Some(name) {
        path.push(name.to_owned());
    }
}

/// An invalid value found after extraction, blamed on the layer that set it.
fn invalid(figment: &Figment, key: &str, reason: impl Into<String>) -> ServeError {
    let (origin, origin_text) = describe(figment.find_metadata(key));
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    ServeError::InvalidKey {
        key: spell(origin, &path),
        origin: origin_text,
        reason: reason.into(),
    }
}

/// Checks what serde cannot, fills in derived values, and parses the allowlist.
fn validate(config: &mut ServeConfig, figment: &Figment) -> Result<Allowlist, ServeError> {
    config.root = match std::fs::canonicalize(&config.root) {
        Ok(root) if root.is_dir() => root,
        Ok(_) => {
            return Err(ServeError::Root {
                path: config.root.clone(),
                reason: "it is not a directory".to_owned(),
            });
        }
        Err(e) => {
            return Err(ServeError::Root {
                path: config.root.clone(),
                reason: e.to_string(),
            });
        }
    };
    if config.max_concurrent_slaves == 0 {
        return Err(invalid(
            figment,
            "max_concurrent_slaves",
            "it must be at least 1",
        ));
    }
    if config.heartbeat_interval.is_zero() {
        return Err(invalid(
            figment,
            "heartbeat_interval",
            "it must be longer than zero",
        ));
    }
    if config.heartbeat_misses == 0 {
        return Err(invalid(
            figment,
            "heartbeat_misses",
            "it must be at least 1",
        ));
    }
    for (key, value) in [
        ("max_frame_len", config.max_frame_len),
        ("max_channels_per_session", config.max_channels_per_session),
        ("outbox_limit", config.outbox_limit),
        ("slave_inbox_limit", config.slave_inbox_limit),
    ] {
        if value == 0 {
            return Err(invalid(figment, key, "it must be at least 1"));
        }
        if u32::try_from(value).is_err() {
            return Err(invalid(
                figment,
                key,
                "it must be at most 4294967295 (4 GiB - 1)",
            ));
        }
    }
    if config.client_stall_timeout.is_zero() {
        return Err(invalid(
            figment,
            "client_stall_timeout",
            "it must be longer than zero",
        ));
    }
    if config.open_timeout.is_zero() {
        return Err(invalid(
            figment,
            "open_timeout",
            "it must be longer than zero",
        ));
    }
    let admission = &config.admission;
    for (key, zero) in [
        (
            "admission.handshake_timeout",
            admission.handshake_timeout.is_zero(),
        ),
        (
            "admission.max_unauthenticated",
            admission.max_unauthenticated == 0,
        ),
        (
            "admission.max_unauthenticated_per_address",
            admission.max_unauthenticated_per_address == 0,
        ),
        (
            "admission.penalty_after_failures",
            admission.penalty_after_failures == 0,
        ),
        (
            "admission.penalty_table_size",
            admission.penalty_table_size == 0,
        ),
    ] {
        if zero {
            return Err(invalid(figment, key, "it must be more than zero"));
        }
    }
    if admission.penalty_max < admission.penalty_initial {
        return Err(invalid(
            figment,
            "admission.penalty_max",
            "it must be at least admission.penalty_initial",
        ));
    }
    if let Some(auth) = &config.basic_auth {
        if auth.username.is_empty() || auth.username.contains(':') {
            return Err(invalid(
                figment,
                "basic_auth.username",
                "it must not be empty and must not contain `:`",
            ));
        }
        match (&auth.password, &auth.password_hash) {
            (Some(_), None) => {}
            (None, Some(hash)) => {
                if let Err(problem) = crate::auth::PasswordHash::parse(hash.expose()) {
                    return Err(invalid(
                        figment,
                        "basic_auth.password_hash",
                        problem.to_string(),
                    ));
                }
            }
            _ => return Err(invalid(figment, "basic_auth", crate::auth::ONE_OF)),
        }
    }
    match (&config.passphrase, &config.passphrase_hash) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                figment,
                "passphrase_hash",
                "set either passphrase or passphrase_hash, not both",
            ));
        }
        (Some(passphrase), None) if passphrase.expose().is_empty() => {
            return Err(invalid(figment, "passphrase", "it must not be empty"));
        }
        (None, Some(hash)) => {
            if let Err(err) = PassphraseKey::parse_hash(hash.expose()) {
                return Err(invalid(figment, "passphrase_hash", err.to_string()));
            }
        }
        _ => {}
    }
    for (ext, program) in &config.interpreters {
        if ext.is_empty() || ext.contains(['.', '/']) {
            return Err(invalid(
                figment,
                "interpreters",
                format!("`{ext}` is not an extension; write it without the dot, e.g. `py`"),
            ));
        }
        if program.as_os_str().is_empty() {
            return Err(invalid(
                figment,
                "interpreters",
                format!("the interpreter for `{ext}` is empty"),
            ));
        }
    }
    if config.server_name.is_none() {
        let name = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        config.server_name = (!name.is_empty()).then_some(name);
    }
    Allowlist::parse(&config.authorized_ips)
}

#[cfg(test)]
// figment's `Jail` closures return `figment::Error`, which is large; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::{LogLevel, Secret};
    use figment::Jail;
    use std::time::Duration;

    fn load_err(args: &[&str]) -> ServeError {
        load_from_args(std::iter::once("distio-serve").chain(args.iter().copied())).unwrap_err()
    }

    fn load_ok(args: &[&str]) -> LoadedConfig {
        load_from_args(std::iter::once("distio-serve").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn precedence_is_defaults_file_env_cli() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "serve.toml",
                "port = 2000\nqueue_limit = 7\nlog_level = \"warn\"\nqueue_timeout = \"1min\"",
            )?;
            jail.set_env("DISTIO_SERVE_PORT", 3000);
            jail.set_env("DISTIO_SERVE_LOG_LEVEL", "debug");
            let loaded = load_ok(&["--config", "serve.toml", "--log-level", "trace"]);
            let c = &loaded.config;
            assert_eq!(c.queue_limit, 7, "file over defaults");
            assert_eq!(
                c.queue_timeout,
                Duration::from_secs(60),
                "file over defaults"
            );
            assert_eq!(c.port, 3000, "env over file");
            assert_eq!(c.log_level, LogLevel::Trace, "cli over env");
            assert_eq!(c.kill_grace, Duration::from_secs(5), "defaults stay");
            assert_eq!(c.root, std::fs::canonicalize(jail.directory()).unwrap());
            assert_eq!(loaded.config_file, Some(PathBuf::from("serve.toml")));

            let c = load_ok(&["--config", "serve.toml", "--port", "4000"]).config;
            assert_eq!(c.port, 4000, "cli over env");
            Ok(())
        });
    }

    #[test]
    fn nested_env_and_raw_secrets() {
        Jail::expect_with(|jail| {
            jail.set_env("DISTIO_SERVE_BASIC_AUTH__USERNAME", "ops");
            jail.set_env("DISTIO_SERVE_BASIC_AUTH__PASSWORD", "007");
            jail.set_env("DISTIO_SERVE_KILL_SLAVES_AFTER", "off");
            jail.set_env("DISTIO_SERVE_AUTHORIZED_IPS", "[10.0.0.0/8, \"::1\"]");
            let c = load_ok(&[]).config;
            let auth = c.basic_auth.unwrap();
            assert_eq!(auth.username, "ops");
            assert_eq!(auth.password.as_ref().map(Secret::expose), Some("007"));
            assert_eq!(c.kill_slaves_after, None);
            assert_eq!(c.authorized_ips, ["10.0.0.0/8", "::1"]);
            Ok(())
        });
    }

    #[test]
    fn interpreters_table_replaces_the_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file("serve.toml", "[interpreters]\nrb = \"ruby\"")?;
            jail.set_env("DISTIO_SERVE_INTERPRETERS__PL", "perl");
            let c = load_ok(&["--config", "serve.toml"]).config;
            let keys: Vec<&str> = c.interpreters.keys().map(String::as_str).collect();
            assert_eq!(keys, ["pl", "rb"]);
            Ok(())
        });
    }

    #[test]
    fn config_file_from_env() {
        Jail::expect_with(|jail| {
            jail.create_file("s.toml", "port = 2222")?;
            jail.set_env("DISTIO_SERVE_CONFIG", "s.toml");
            assert_eq!(load_ok(&[]).config.port, 2222);
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_named() {
        Jail::expect_with(|jail| {
            jail.create_file("serve.toml", "port = 1\nprot = 2")?;
            let err = load_err(&["--config", "serve.toml"]);
            assert!(
                matches!(&err, ServeError::UnknownKey { key, .. } if key == "prot"),
                "{err}"
            );
            assert!(err.to_string().contains("serve.toml"), "{err}");
            assert_eq!(crate::exit_code(&err), 78);

            jail.create_file(
                "nested.toml",
                "[basic_auth]\nusername = \"a\"\npassword = \"b\"\nrole = 1",
            )?;
            let err = load_err(&["--config", "nested.toml"]);
            assert!(err.to_string().contains("`basic_auth.role`"), "{err}");

            jail.set_env("DISTIO_SERVE_PROT", 5);
            let err = load_err(&[]);
            assert!(err.to_string().contains("`DISTIO_SERVE_PROT`"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn wrong_type_is_named() {
        Jail::expect_with(|jail| {
            jail.create_file("serve.toml", "port = \"high\"")?;
            let err = load_err(&["--config", "serve.toml"]);
            assert!(
                matches!(&err, ServeError::InvalidKey { key, .. } if key == "port"),
                "{err}"
            );

            jail.create_file("t.toml", "queue_timeout = \"soon\"")?;
            let err = load_err(&["--config", "t.toml"]);
            assert!(err.to_string().contains("`queue_timeout`"), "{err}");

            jail.create_file("z.toml", "max_concurrent_slaves = 0")?;
            let err = load_err(&["--config", "z.toml"]);
            assert!(err.to_string().contains("`max_concurrent_slaves`"), "{err}");
            assert!(err.to_string().contains("z.toml"), "{err}");

            jail.set_env("DISTIO_SERVE_HEARTBEAT_MISSES", "many");
            let err = load_err(&[]);
            assert!(
                err.to_string().contains("`DISTIO_SERVE_HEARTBEAT_MISSES`"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn file_and_root_problems_are_config_errors() {
        Jail::expect_with(|jail| {
            let err = load_err(&["--config", "missing.toml"]);
            assert!(matches!(err, ServeError::ConfigFile { .. }), "{err}");
            assert!(err.to_string().contains("missing.toml"));
            assert_eq!(crate::exit_code(&err), 78);

            jail.create_file("bad.toml", "port = ")?;
            let err = load_err(&["--config", "bad.toml"]);
            assert!(matches!(err, ServeError::ConfigFile { .. }), "{err}");

            jail.create_file("plain-file", "")?;
            let err = load_err(&["--root", "plain-file"]);
            assert!(err.to_string().contains("not a directory"), "{err}");
            let err = load_err(&["--root", "nowhere"]);
            assert!(matches!(err, ServeError::Root { .. }), "{err}");
            assert_eq!(crate::exit_code(&err), 78);
            Ok(())
        });
    }

    #[test]
    fn regex_allowlist_entry_refused_at_load() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "serve.toml",
                "authorized_ips = ['192\\.168\\.0\\.\\d{1,3}']",
            )?;
            let err = load_err(&["--config", "serve.toml"]);
            assert!(err.to_string().contains("192.168.0.0/24"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn print_config_hides_secrets() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "serve.toml",
                "[basic_auth]\nusername = \"ops\"\npassword = \"pa:ss-w0rd\"",
            )?;
            let loaded = load_ok(&["--config", "serve.toml", "--print-config"]);
            assert!(loaded.print_config);
            let text = loaded.config.to_toml().unwrap();
            assert!(!text.contains("pa:ss-w0rd"), "{text}");
            assert!(text.contains("password = \"***\""), "{text}");
            assert!(!format!("{loaded:?}").contains("pa:ss-w0rd"));
            Ok(())
        });
    }

    #[test]
    fn a_password_hash_is_checked_at_load_and_never_shown() {
        let hash = crate::auth::PasswordHash::derive(b"pw", 600_000)
            .unwrap()
            .to_string();
        Jail::expect_with(|jail| {
            jail.create_file(
                "serve.toml",
                &format!("[basic_auth]\nusername = \"ops\"\npassword_hash = \"{hash}\""),
            )?;
            let loaded = load_ok(&["--config", "serve.toml"]);
            let text = loaded.config.to_toml().unwrap();
            assert!(text.contains("password_hash = \"***\""), "{text}");
            assert!(!text.contains(&hash[20..]), "{text}");
            assert!(!format!("{loaded:?}").contains(&hash[20..]));

            jail.create_file(
                "weak.toml",
                "[basic_auth]\nusername = \"ops\"\npassword_hash = \"$pbkdf2-sha256$i=1000$c2FsdHNhbHRzYWx0c2FsdA$c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw\"",
            )?;
            let err = load_err(&["--config", "weak.toml"]).to_string();
            assert!(
                err.contains("basic_auth.password_hash") && err.contains("iteration"),
                "{err}"
            );
            assert!(!err.contains("c2FsdHNhbHRz"), "{err}");

            jail.create_file("both.toml", "[basic_auth]\nusername = \"ops\"")?;
            let err = load_err(&["--config", "both.toml"]).to_string();
            assert!(err.contains("password_hash"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn usage_errors_exit_64_and_help_exits_0() {
        Jail::expect_with(|_| {
            assert_eq!(crate::exit_code(&load_err(&["--port", "70000"])), 64);
            assert_eq!(crate::exit_code(&load_err(&["--nope"])), 64);
            assert_eq!(crate::exit_code(&load_err(&["--help"])), 0);
            Ok(())
        });
    }
}
