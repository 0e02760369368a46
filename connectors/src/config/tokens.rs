//! `[tokens]` of `gridflow.toml`: how long API tokens live.
//!
//! ```toml
//! [tokens]
//! default_lifetime = "90d"   # a token created without `expires_in`
//! max_lifetime = "365d"      # the longest `expires_in` accepted
//! ```

use std::time::Duration;

use serde::Deserialize;

/// The lifetime of a token created without `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// The longest `expires_in` accepted by default.
const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// `[tokens]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// The lifetime of a token created without `expires_in`.
    #[serde(
        default = "default_lifetime",
        deserialize_with = "super::common::duration"
    )]
    pub default_lifetime: Duration,
    /// The longest lifetime a token may be given.
    #[serde(default = "max_lifetime", deserialize_with = "super::common::duration")]
    pub max_lifetime: Duration,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            default_lifetime: DEFAULT_TOKEN_LIFETIME,
            max_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
        }
    }
}

fn default_lifetime() -> Duration {
    DEFAULT_TOKEN_LIFETIME
}

fn max_lifetime() -> Duration {
    DEFAULT_MAX_TOKEN_LIFETIME
}

impl TokensConfig {
    /// `(key, message)` of the first problem.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        if self.default_lifetime.is_zero() {
            return Err((
                "tokens.default_lifetime".to_owned(),
                "must be greater than zero".to_owned(),
            ));
        }
        if self.max_lifetime < self.default_lifetime {
            return Err((
                "tokens.max_lifetime".to_owned(),
                format!(
                    "{} is shorter than tokens.default_lifetime ({})",
                    humantime::format_duration(self.max_lifetime),
                    humantime::format_duration(self.default_lifetime)
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn defaults_apply_and_bad_lifetimes_are_named() {
        let config = Config::parse("", "gridflow.toml").unwrap();
        assert_eq!(config.tokens.default_lifetime, DEFAULT_TOKEN_LIFETIME);
        let config =
            Config::parse("[tokens]\ndefault_lifetime = \"7d\"\n", "gridflow.toml").unwrap();
        assert_eq!(
            config.tokens.default_lifetime,
            Duration::from_secs(7 * 24 * 3600)
        );
        for (text, key) in [
            (
                "[tokens]\ndefault_lifetime = \"0s\"\n",
                "tokens.default_lifetime",
            ),
            (
                "[tokens]\ndefault_lifetime = \"30d\"\nmax_lifetime = \"1d\"\n",
                "tokens.max_lifetime",
            ),
        ] {
            let error = Config::parse(text, "gridflow.toml").unwrap_err();
            assert_eq!(error.key, key, "{error}");
            assert!(error.to_string().starts_with("gridflow.toml: "), "{error}");
        }
    }
}
