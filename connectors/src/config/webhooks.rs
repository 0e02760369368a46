//! `[webhooks]`: how `POST /api/v1/events/{source}` authenticates each source.
//!
//! Every source signs by default (`X-Gridflow-Timestamp` and `X-Gridflow-Signature`, see
//! DESIGN.md §5); only a source listed here with `plain_secret` may instead send its
//! secret as is and name its event in `?type=`, because the system cannot sign.
//!
//! ```toml
//! [webhooks]
//! max_body_bytes = 1048576             # larger bodies are refused (413)
//!
//! [webhooks.sources.iconik]
//! plain_secret = "header"              # the secret in X-Gridflow-Token
//! event_id_field = "request_id"        # the body field that identifies an event
//!
//! [webhooks.sources.canto]
//! plain_secret = "body"                # the secret in the body's secure_token
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// The default of `webhooks.max_body_bytes`: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// `[webhooks]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// The largest webhook body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// `[webhooks.sources.<source>]`: sources that need something other than the default.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            sources: BTreeMap::new(),
        }
    }
}

fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

/// `[webhooks.sources.<source>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Where a source that cannot sign sends its secret as is. Such a source may also name
    /// the event type in the query (`?type=`). Unset: the source must sign.
    #[serde(default)]
    pub plain_secret: Option<PlainSecret>,
    /// The body field that holds the event id of an unsigned event, when the sender sends
    /// no `X-Gridflow-Event-Id`. Unset: such events carry no id (Canto's body has none:
    /// its `id` names the content, not the event) and are not deduplicated.
    #[serde(default)]
    pub event_id_field: Option<String>,
}

/// Where a source sends its plain secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlainSecret {
    /// In the header `X-Gridflow-Token` (iconik sends custom headers with each webhook).
    Header,
    /// In the body's string field `secure_token` (Canto's "Secure Token").
    Body,
}

impl WebhooksConfig {
    /// The settings of iconik and Canto as the sandbox's simulators need them, added where
    /// the file sets nothing for those sources.
    pub fn with_sandbox_sources(mut self) -> Self {
        self.sources
            .entry("iconik".to_owned())
            .or_insert_with(|| SourceConfig {
                plain_secret: Some(PlainSecret::Header),
                event_id_field: Some("request_id".to_owned()),
            });
        self.sources
            .entry("canto".to_owned())
            .or_insert_with(|| SourceConfig {
                plain_secret: Some(PlainSecret::Body),
                event_id_field: None,
            });
        self
    }

    /// Checks the values serde cannot: `(key, message)` of the first problem.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.max_body_bytes == 0 {
            return Err((
                "webhooks.max_body_bytes".to_owned(),
                "must be greater than zero".to_owned(),
            ));
        }
        for (source, settings) in &self.sources {
            if source.is_empty()
                || !source
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err((
                    format!("webhooks.sources.{source}"),
                    "a source name may only hold letters, digits, _ and -".to_owned(),
                ));
            }
            if settings
                .event_id_field
                .as_deref()
                .is_some_and(str::is_empty)
            {
                return Err((
                    format!("webhooks.sources.{source}.event_id_field"),
                    "must not be empty".to_owned(),
                ));
            }
        }
        Ok(())
    }
}
