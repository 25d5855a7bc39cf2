//! Serde helpers for durations written as humantime strings (`"30s"`, `"15min"`, `"1h 30m"`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// What a duration field accepts; `allow_off` adds `"off"` (and a zero duration) for "no limit".
struct DurationVisitor {
    allow_off: bool,
}

impl Visitor<'_> for DurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.allow_off {
            f.write_str("a duration such as \"30s\" or \"15min\", or \"off\"")
        } else {
            f.write_str("a duration such as \"30s\" or \"15min\"")
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        if self.allow_off && matches!(v, "off" | "none" | "never") {
            return Ok(None);
        }
        let duration = humantime::parse_duration(v).map_err(|e| {
            E::custom(format!(
                "`{v}` is not a duration ({e}); write e.g. \"30s\" or \"15min\""
            ))
        })?;
        Ok(Some(duration))
    }
}

/// A required duration.
pub(super) mod required {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor { allow_off: false })?
            .ok_or_else(|| de::Error::custom("a duration is required here"))
    }
}

/// An optional duration: `"off"` or a zero duration means none.
pub(super) mod optional {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::required::serialize(d, s),
            None => s.serialize_str("off"),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(d.deserialize_any(DurationVisitor { allow_off: true })?
            .filter(|d| !d.is_zero()))
    }
}

/// Parses a duration given on the command line (same forms as in a file).
pub(super) fn parse_cli(v: &str, allow_off: bool) -> Result<Option<Duration>, String> {
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, StrDeserializer};
    let de: StrDeserializer<'_, Error> = v.into_deserializer();
    de.deserialize_any(DurationVisitor { allow_off })
        .map_err(|e| e.to_string())
}
