//! Durations as written in definitions: `30s`, `1m`, `48h`, `7d`, `1h30m`, or a number of seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses a definition duration such as `2s`, `1m`, `48h`, `7d` or `1h30m`.
///
/// Units follow humantime (`m` is minutes, `M` months); a bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(trimmed).map_err(|error| {
        format!("invalid duration {text:?}: {error} (write e.g. 30s, 5m, 48h, 7d)")
    })
}

/// Formats a duration the way [`parse`] reads it back.
pub fn format(duration: Duration) -> String {
    humantime::format_duration(duration)
        .to_string()
        .replace(' ', "")
}

/// Serde adapter for `Duration` fields written as text.
pub mod text {
    use super::*;

    /// Serializes as `1m30s`.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*duration))
    }

    /// Deserializes from `1m30s` or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let raw = serde_json::Value::deserialize(deserializer)?;
        match raw {
            serde_json::Value::String(text) => parse(&text).map_err(serde::de::Error::custom),
            serde_json::Value::Number(number) => number
                .as_f64()
                .filter(|seconds| *seconds >= 0.0 && seconds.is_finite())
                .map(Duration::from_secs_f64)
                .ok_or_else(|| serde::de::Error::custom("a duration must not be negative")),
            other @ (serde_json::Value::Null
            | serde_json::Value::Bool(_)
            | serde_json::Value::Array(_)
            | serde_json::Value::Object(_)) => Err(serde::de::Error::custom(format!(
                "expected a duration such as \"30s\", found {other}"
            ))),
        }
    }
}

/// Serde adapter for `Option<Duration>` fields written as text.
pub mod option_text {
    use super::*;

    /// Serializes as `1m30s` or null.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => text::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes from `1m30s`, a number of seconds, or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapper(#[serde(with = "text")] Duration);
        Ok(Option::<Wrapper>::deserialize(deserializer)?.map(|Wrapper(duration)| duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_definition_units() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("48h"), Ok(Duration::from_secs(48 * 3600)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse("15"), Ok(Duration::from_secs(15)));
        assert!(parse("soon").is_err());
    }

    #[test]
    fn format_round_trips() {
        for text in ["30s", "1m", "1h30m", "10ms", "7days"] {
            let duration = parse(text).unwrap();
            assert_eq!(parse(&format(duration)), Ok(duration));
        }
    }
}
