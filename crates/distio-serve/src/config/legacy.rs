//! The original Dist.io server's JSON config file, read as it is and mapped onto [`ServeConfig`].
//!
//! | Original key          | Here                    | Notes                                            |
//! |-----------------------|-------------------------|--------------------------------------------------|
//! | `logLevel`            | `log_level`             | 0 error, 1 warn, 2–4 info, 5 debug; or a name    |
//! | `port`                | `port`                  |                                                  |
//! | `root`                | `root`                  | relative to the working directory, as before     |
//! | `basicAuth`           | `basic_auth`            | `passphrase` becomes `passphrase` (see below)    |
//! | `authorizedIps`       | `authorized_ips`        | addresses and CIDR ranges; regexes are refused   |
//! | `maxConcurrentSlaves` | `max_concurrent_slaves` | `<= 0` means the default                         |
//! | `killSlavesAfter`     | `kill_slaves_after`     | milliseconds; `0` means no limit                 |
//!
//! The original's `basicAuth.passphrase` becomes the top-level `passphrase`: masters must
//! then prove they know it (without sending it) as well as present the user and password.
//!
//! [`ServeConfig`]: super::ServeConfig

use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::value::{Dict, Value};
use serde::{Deserialize, Serialize};

use super::load::{Layer, from_figment};
use super::{LogLevel, duration};
use crate::ServeError;

/// The original's config, as its server read it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LegacyConfig {
    log_level: Option<LegacyLogLevel>,
    port: Option<u16>,
    root: Option<String>,
    basic_auth: Option<LegacyBasicAuth>,
    authorized_ips: Option<Vec<String>>,
    max_concurrent_slaves: Option<f64>,
    kill_slaves_after: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyBasicAuth {
    username: String,
    password: String,
    passphrase: Option<String>,
}

/// The original's `logLevel`: a number 0–5 or one of its level names.
#[derive(Debug)]
struct LegacyLogLevel(LogLevel);

impl<'de> Deserialize<'de> for LegacyLogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Name(String),
        }
        let level = match Raw::deserialize(d)? {
            Raw::Number(n) => LogLevel::from_number(n).ok_or_else(|| {
                D::Error::custom(format!("log level {n} is out of range; use 0 to 5"))
            })?,
            Raw::Name(name) => match name.as_str() {
                "disconnect" | "close" | "start" | "spawn" | "connect" => LogLevel::Info,
                "verbose" => LogLevel::Debug,
                other => other.parse().map_err(D::Error::custom)?,
            },
        };
        Ok(Self(level))
    }
}

/// The part of [`ServeConfig`](super::ServeConfig) that a legacy file sets.
#[derive(Debug, Default, Serialize)]
struct Mapped {
    #[serde(skip_serializing_if = "Option::is_none")]
    log_level: Option<LogLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    basic_auth: Option<MappedAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    passphrase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorized_ips: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_concurrent_slaves: Option<u64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_lifetime"
    )]
    kill_slaves_after: Option<Option<Duration>>,
}

#[derive(Debug, Serialize)]
struct MappedAuth {
    username: String,
    password: String,
}

fn serialize_lifetime<S: serde::Serializer>(
    v: &Option<Option<Duration>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    duration::optional::serialize(&v.flatten(), s)
}

/// Reads the original's JSON config file into a layer of [`ServeConfig`](super::ServeConfig) keys.
pub(super) fn read(path: &Path, content: &str) -> Result<Layer, ServeError> {
    let file_error = |reason: String| ServeError::ConfigFile {
        path: path.to_owned(),
        reason,
    };
    let raw: Dict = serde_json::from_str(content)
        .map_err(|e| file_error(format!("it is not valid JSON ({e})")))?;
    let legacy: LegacyConfig = Figment::from(Layer::file(path, raw))
        .extract()
        .map_err(from_figment)?;
    let mapped = map(path, legacy)?;
    let dict = Value::serialize(&mapped)
        .ok()
        .and_then(Value::into_dict)
        .ok_or_else(|| {
            file_error("its values could not be mapped onto the configuration".to_owned())
        })?;
    tracing::info!(file = %path.display(), "read a Dist.io JSON config file");
    Ok(Layer::file(path, dict))
}

fn map(path: &Path, legacy: LegacyConfig) -> Result<Mapped, ServeError> {
    let invalid = |key: &str, reason: &str| ServeError::InvalidKey {
        key: key.to_owned(),
        origin: format!("the configuration file {}", path.display()),
        reason: reason.to_owned(),
    };
    let (basic_auth, passphrase) = match legacy.basic_auth {
        Some(LegacyBasicAuth {
            username,
            password,
            passphrase,
        }) => (Some(MappedAuth { username, password }), passphrase),
        None => (None, None),
    };
    let max_concurrent_slaves = match legacy.max_concurrent_slaves {
        // The original treated "unset or <= 0" as its default; so do we (ours is bounded).
        Some(n) if n <= 0.0 => None,
        Some(n) if n.fract() != 0.0 || !n.is_finite() => {
            return Err(invalid("maxConcurrentSlaves", "it must be a whole number"));
        }
        Some(n) => Some(n as u64),
        None => None,
    };
    let kill_slaves_after = match legacy.kill_slaves_after {
        // The original killed no slave when this was 0.
        Some(0.0) => Some(None),
        Some(ms) if ms < 0.0 || !ms.is_finite() => {
            return Err(invalid(
                "killSlavesAfter",
                "it must be a number of milliseconds, 0 for no limit",
            ));
        }
        Some(ms) => Some(Some(Duration::from_millis(ms.round() as u64))),
        None => None,
    };
    Ok(Mapped {
        log_level: legacy.log_level.map(|l| l.0),
        port: legacy.port,
        root: legacy.root,
        basic_auth,
        passphrase,
        authorized_ips: legacy.authorized_ips,
        max_concurrent_slaves,
        kill_slaves_after,
    })
}

#[cfg(test)]
// figment's `Jail` closures return `figment::Error`, which is large; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::config::load_from_args;
    use figment::Jail;

    /// The example config of the reference README, without its `//` comments and trailing comma
    /// (which the original's own `require()` would refuse too), passphrase removed.
    const REFERENCE: &str = r#"{
      "logLevel": 5,
      "port": 1337,
      "root": ".",
      "basicAuth": {
        "username": "username",
        "password": "password"
      },
      "authorizedIps": [
        "10.1.2.3",
        "192.168.0.0/24"
      ],
      "maxConcurrentSlaves": 8,
      "killSlavesAfter": 900000
    }"#;

    /// The original's own `serve-default-config.json`.
    const ORIGINAL_DEFAULT: &str =
        r#"{ "logLevel": 4, "port": 1337, "root": ".", "killSlavesAfter": 900000 }"#;

    fn load(file: &str) -> Result<crate::LoadedConfig, ServeError> {
        load_from_args(["distio-serve", &format!("--config={file}")])
    }

    #[test]
    fn reference_config_is_read() {
        Jail::expect_with(|jail| {
            jail.create_file("serve.json", REFERENCE)?;
            let loaded = load("serve.json").unwrap();
            let c = &loaded.config;
            assert_eq!(c.log_level, LogLevel::Debug);
            assert_eq!(c.port, 1337);
            assert_eq!(c.root, std::fs::canonicalize(jail.directory()).unwrap());
            let auth = c.basic_auth.as_ref().unwrap();
            assert_eq!(
                (
                    auth.username.as_str(),
                    auth.password.as_ref().map_or("", |p| p.expose())
                ),
                ("username", "password")
            );
            assert_eq!(c.max_concurrent_slaves, 8);
            assert_eq!(c.kill_slaves_after, Some(Duration::from_secs(900)));
            assert!(loaded.allowlist.allows("192.168.0.77".parse().unwrap()));
            assert!(!loaded.allowlist.allows("10.1.2.4".parse().unwrap()));
            Ok(())
        });
    }

    #[test]
    fn original_default_file_is_read_and_cli_overrides_it() {
        Jail::expect_with(|jail| {
            jail.create_file("default.config", ORIGINAL_DEFAULT)?;
            let c = load_from_args([
                "x",
                "--config=default.config",
                "--port=3000",
                "--logLevel=1",
            ])
            .unwrap()
            .config;
            assert_eq!(c.port, 3000);
            assert_eq!(c.log_level, LogLevel::Warn);
            Ok(())
        });
    }

    #[test]
    fn original_edge_values() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "a.json",
                r#"{"maxConcurrentSlaves": -1, "killSlavesAfter": 0, "logLevel": "verbose"}"#,
            )?;
            let c = load("a.json").unwrap().config;
            assert_eq!(
                c.max_concurrent_slaves,
                crate::ServeConfig::default().max_concurrent_slaves
            );
            assert_eq!(c.kill_slaves_after, None);
            assert_eq!(c.log_level, LogLevel::Debug);
            Ok(())
        });
    }

    #[test]
    fn regex_entry_is_refused_with_cidr() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "r.json",
                r#"{"authorizedIps": ["192\\.168\\.0\\.\\d{1,3}"]}"#,
            )?;
            let err = load("r.json").unwrap_err();
            assert!(
                matches!(&err, ServeError::AllowlistRegex { suggestion: Some(s), .. } if s == "192.168.0.0/24"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_passphrase_maps_to_the_passphrase_mode() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "p.json",
                r#"{"basicAuth": {"username": "u", "password": "p", "passphrase": "secret"}}"#,
            )?;
            let config = load("p.json").unwrap().config;
            assert_eq!(
                config.passphrase.as_ref().map(|p| p.expose()),
                Some("secret")
            );
            assert_eq!(config.basic_auth.map(|a| a.username), Some("u".into()));
            Ok(())
        });
    }

    #[test]
    fn bad_keys_and_types_are_named() {
        Jail::expect_with(|jail| {
            jail.create_file("u.json", r#"{"prot": 1}"#)?;
            let err = load("u.json").unwrap_err();
            assert!(
                matches!(&err, ServeError::UnknownKey { key, .. } if key == "prot"),
                "{err}"
            );

            jail.create_file(
                "t.json",
                r#"{"basicAuth": {"username": 5, "password": "p"}}"#,
            )?;
            let err = load("t.json").unwrap_err();
            assert!(err.to_string().contains("`basicAuth.username`"), "{err}");

            jail.create_file("s.json", r#"{"port": 1,}"#)?;
            let err = load("s.json").unwrap_err();
            assert!(matches!(err, ServeError::ConfigFile { .. }), "{err}");
            assert!(err.to_string().contains("s.json"), "{err}");
            Ok(())
        });
    }
}
