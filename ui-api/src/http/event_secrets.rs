//! The webhook secret of each event source and the `[webhooks]` settings that say how
//! each source authenticates: part of the server's state, read once at start-up, never
//! printed. `events` checks inbound webhooks against them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use gridflow_connectors::config::{SourceConfig, WebhooksConfig};

/// The prefix of the environment variables that hold the sources' secrets.
pub const SECRET_VARIABLE_PREFIX: &str = "GRIDFLOW_EVENT_SECRET_";

/// The webhook secret of each event source, and the `[webhooks]` settings of
/// `gridflow.toml` that say how each source authenticates. Cheap to clone; never prints a
/// secret.
#[derive(Clone, Default)]
pub struct EventSecrets {
    /// By source key: the source uppercased, `-` as `_`.
    secrets: Arc<HashMap<String, Vec<u8>>>,
    /// `[webhooks]`.
    settings: Arc<WebhooksConfig>,
}

impl fmt::Debug for EventSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sources: Vec<&String> = self.secrets.keys().collect();
        sources.sort();
        f.debug_struct("EventSecrets")
            .field("sources", &sources)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EventSecrets {
    /// Secrets given as `(source, secret)` pairs. Empty secrets are left out.
    pub fn new<S: AsRef<str>, K: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (S, K)>) -> Self {
        let secrets = pairs
            .into_iter()
            .filter(|(_, secret)| !secret.as_ref().is_empty())
            .map(|(source, secret)| (source_key(source.as_ref()), secret.as_ref().to_vec()))
            .collect();
        Self {
            secrets: Arc::new(secrets),
            settings: Arc::default(),
        }
    }

    /// These secrets with the `[webhooks]` settings of `gridflow.toml`.
    pub fn with_settings(mut self, settings: WebhooksConfig) -> Self {
        self.settings = Arc::new(settings);
        self
    }

    /// The settings of `source` (the defaults for a source not configured).
    pub fn settings(&self, source: &str) -> SourceConfig {
        self.settings
            .sources
            .get(source)
            .cloned()
            .unwrap_or_default()
    }

    /// The largest body accepted (`webhooks.max_body_bytes`).
    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    /// Secrets from the variables `GRIDFLOW_EVENT_SECRET_<SOURCE>` of the environment.
    pub fn from_env() -> Self {
        Self::new(std::env::vars_os().filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            let source = name.strip_prefix(SECRET_VARIABLE_PREFIX)?.to_owned();
            Some((source, value.into_encoded_bytes()))
        }))
    }

    /// These secrets plus `secret` for `source`, unless `source` has one already.
    pub fn with_default(&self, source: &str, secret: &[u8]) -> Self {
        let mut secrets = (*self.secrets).clone();
        if !secret.is_empty() {
            secrets
                .entry(source_key(source))
                .or_insert_with(|| secret.to_vec());
        }
        Self {
            secrets: Arc::new(secrets),
            settings: self.settings.clone(),
        }
    }

    /// The secret of `source`, if one is configured.
    pub fn secret(&self, source: &str) -> Option<&[u8]> {
        self.secrets.get(&source_key(source)).map(Vec::as_slice)
    }

    /// How many sources have a secret.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether no source has a secret.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

fn source_key(source: &str) -> String {
    source.to_ascii_uppercase().replace('-', "_")
}
