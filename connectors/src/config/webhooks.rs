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
//!
//! [webhooks.sources.trading_grid]
//! signature_header = "X-Hub-Signature" # sha256=<hex HMAC-SHA256 of the raw body>
//! event_id_field = "event_id"          # the body field that identifies an event
//! event_type_field = "event"           # the body field that names it
//! ```
//!
//! A source with `signature_header` signs the raw body in its own way, without a
//! timestamp; its event id is required and stops a replay. It may still sign the gridflow
//! way, and it cannot have a `plain_secret`.

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
    /// The header in which the source sends `sha256=<hex HMAC-SHA256 of the raw body>`
    /// (the hub's `X-Hub-Signature`, VIP's `X-Signature`). With it, `event_id_field`
    /// (default `id`) names the required event id and `event_type_field` (default `type`)
    /// the event.
    #[serde(default)]
    pub signature_header: Option<String>,
    /// With `signature_header`, the body field naming the event (default `type`).
    #[serde(default)]
    pub event_type_field: Option<String>,
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
                ..SourceConfig::default()
            });
        self.sources
            .entry("canto".to_owned())
            .or_insert_with(|| SourceConfig {
                plain_secret: Some(PlainSecret::Body),
                event_id_field: None,
                ..SourceConfig::default()
            });
        self.sources
            .entry("trading_grid".to_owned())
            .or_insert_with(Self::hub_source);
        self.sources
            .entry("vip".to_owned())
            .or_insert_with(|| SourceConfig {
                signature_header: Some("X-Signature".to_owned()),
                event_id_field: Some("id".to_owned()),
                event_type_field: Some("type".to_owned()),
                ..SourceConfig::default()
            });
        self
    }

    /// The settings of the Trading Grid hub's signed callbacks: `X-Hub-Signature` over
    /// `{event_id, event, occurred_at, data}`.
    pub fn hub_source() -> SourceConfig {
        SourceConfig {
            signature_header: Some("X-Hub-Signature".to_owned()),
            event_id_field: Some("event_id".to_owned()),
            event_type_field: Some("event".to_owned()),
            ..SourceConfig::default()
        }
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
            for (key, value) in [
                ("event_id_field", &settings.event_id_field),
                ("event_type_field", &settings.event_type_field),
            ] {
                if value.as_deref().is_some_and(str::is_empty) {
                    return Err((
                        format!("webhooks.sources.{source}.{key}"),
                        "must not be empty".to_owned(),
                    ));
                }
            }
            if let Some(header) = &settings.signature_header {
                if header.is_empty()
                    || !header
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err((
                        format!("webhooks.sources.{source}.signature_header"),
                        format!("{header:?} is not a header name (letters, digits, - and _)"),
                    ));
                }
                if settings.plain_secret.is_some() {
                    return Err((
                        format!("webhooks.sources.{source}.signature_header"),
                        "a source signs or sends a plain_secret, not both".to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }
}
