//! The checks every `[connectors.<system>]` section shares: URLs, variable names and
//! durations, each failing with an [`Error`] that names the file and the key.

use std::time::Duration;

use super::common::Error;

/// Checks for the sections of one configuration file.
pub(crate) struct Checks<'a> {
    /// The file named in every error.
    pub(crate) file: &'a str,
}

impl Checks<'_> {
    /// An error at `key` of this file.
    pub(crate) fn error(&self, key: String, message: String) -> Error {
        Error {
            file: self.file.to_owned(),
            key,
            message,
        }
    }

    /// `url` must be an http(s) URL.
    pub(crate) fn url(&self, key: &str, url: &str) -> Result<(), Error> {
        match reqwest::Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
            Ok(_) => Err(self.error(key.to_owned(), format!("{url:?} is not an http(s) URL"))),
            Err(cause) => Err(self.error(key.to_owned(), format!("{url:?} is not a URL: {cause}"))),
        }
    }

    /// `name` must be an environment variable name, never the secret itself.
    pub(crate) fn env(&self, key: &str, name: &str) -> Result<(), Error> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            Ok(())
        } else {
            Err(self.error(
                key.to_owned(),
                format!(
                    "{name:?} is not an environment variable name (A-Z, 0-9, _); \
                     name the variable, never put the secret here"
                ),
            ))
        }
    }

    /// `value` must be greater than zero.
    pub(crate) fn positive(&self, key: &str, value: Duration) -> Result<(), Error> {
        if value.is_zero() {
            Err(self.error(key.to_owned(), "must be greater than zero".to_owned()))
        } else {
            Ok(())
        }
    }
}
