//! The `smintio` connector: Smint.io's Content Licensing API for consumers (CLAPI-C) as
//! described in `smintio.md`. Tokens come from the refresh-token grant at the identity
//! server's `POST /connect/token` (form `grant_type=refresh_token`, `client_id`,
//! `client_secret`, `refresh_token`) \[V\], then `Authorization: Bearer` \[V\]. Licensed
//! assets are licence purchase transactions (LPTs) read through the continuation-token sync
//! feed; the REST paths are our design mirroring the client operations \[D\]. CLAPI-C is
//! read-only: there is no metadata update or new version. Errors are `{"message": …}` or
//! OAuth's `{"error", "error_description"}` \[D\].
//!
//! `fetch_content` (a binary's bytes into the content store, by digest) lives in
//! `content.rs`; the change feed (`smintio.asset_changed`, `smintio.licence_changed`,
//! both reporting the licence window as observed rights) in `feed.rs` and `events.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::asset::{ApprovalState, RightsWindow, parse_instant};
use crate::config::SmintioConfig;
use crate::connector::{ActionSpec, Connector, Effects, Error, EventEffects, Invocation, Result};
use crate::content::Artifact;
use crate::effects::ObservedRights;
use crate::http::Secret;
use crate::rest::{Request, RestClient, TokenSource, parse_arguments, required, segment};
use crate::schema::{action, array_of, object, string};

pub mod config;
mod content;
mod events;
pub mod feed;
pub(crate) mod setup;
pub mod simulator;

use content::FetchContentArgs;

/// The connector's name.
pub const NAME: &str = "smintio";

/// The token path on the identity server \[V\].
pub const TOKEN_PATH: &str = "/connect/token";

/// The sync feed of licence purchase transactions \[D\].
pub const SYNC_PATH: &str = "/assets/license-purchase-transactions/for-sync";

/// How many LPTs one page of the feed asks for while looking for one asset.
const SCAN_LIMIT: u32 = 100;

/// The most pages `get_asset` reads before giving up.
const SCAN_PAGES: usize = 1000;

/// The credentials of the Smint.io connector.
#[derive(Debug, Clone)]
pub struct SmintioCredentials {
    /// OAuth client id.
    pub client_id: Secret,
    /// OAuth client secret.
    pub client_secret: Secret,
    /// The refresh token (`offline_access`).
    pub refresh_token: Secret,
}

impl SmintioCredentials {
    /// Reads the variables named by `config`.
    pub fn from_environment(config: &SmintioConfig) -> Result<Self, crate::config::Error> {
        Ok(Self {
            client_id: crate::config::credential(
                "connectors.smintio.client_id_env",
                &config.client_id_env,
            )?,
            client_secret: crate::config::credential(
                "connectors.smintio.client_secret_env",
                &config.client_secret_env,
            )?,
            refresh_token: crate::config::credential(
                "connectors.smintio.refresh_token_env",
                &config.refresh_token_env,
            )?,
        })
    }
}

/// The Smint.io connector.
pub struct SmintioConnector {
    client: RestClient,
    /// For signed download URLs, which get no Smint.io token.
    http: reqwest::Client,
    timeout: Duration,
    poll_interval: Duration,
    actions: Vec<ActionSpec>,
    /// Where fetched bytes are kept and delivered content is read from.
    content: crate::content::ContentStore,
}

/// The refresh-token grant; a rotated refresh token replaces the previous one.
struct RefreshGrant {
    identity: RestClient,
    client_id: Secret,
    client_secret: Secret,
    refresh_token: Mutex<Secret>,
}

#[async_trait]
impl TokenSource for RefreshGrant {
    async fn fetch(&self, _client: &RestClient) -> Result<Secret> {
        let refresh_token = self
            .refresh_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let request = Request::new(Method::POST, TOKEN_PATH).form(vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("client_id".to_owned(), self.client_id.expose().to_owned()),
            (
                "client_secret".to_owned(),
                self.client_secret.expose().to_owned(),
            ),
            (
                "refresh_token".to_owned(),
                refresh_token.expose().to_owned(),
            ),
        ]);
        let answer = self.identity.call_unauthenticated(&request, None).await?;
        let token = required(&answer, "/access_token", "smintio token")?
            .as_str()
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_response",
                    "smintio token: access_token is not a string",
                )
            })?;
        if let Some(rotated) = answer.get("refresh_token").and_then(Value::as_str) {
            *self
                .refresh_token
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Secret::new(rotated);
        }
        Ok(Secret::new(token))
    }
}

/// The identity server's client needs no token of its own.
struct NoToken;

#[async_trait]
impl TokenSource for NoToken {
    async fn fetch(&self, _client: &RestClient) -> Result<Secret> {
        Err(Error::permanent(
            "invalid_configuration",
            "the smintio identity client sends no token",
        ))
    }
}

/// The system's message: `message`, else OAuth's `error_description` or `error`.
fn message_of(body: &Value) -> Option<String> {
    ["message", "error_description", "error"]
        .iter()
        .find_map(|field| body.get(*field).and_then(Value::as_str))
        .map(str::to_owned)
}

/// The first value of a localised array (`[{culture, value}]`), English first.
fn localised(values: &Value) -> Option<String> {
    let list = values.as_array()?;
    list.iter()
        .find(|entry| {
            entry["culture"]
                .as_str()
                .is_some_and(|culture| culture.starts_with("en"))
        })
        .or_else(|| list.first())
        .and_then(|entry| entry["value"].as_str())
        .map(str::to_owned)
}

fn has_restrictions(lpt: &Value) -> bool {
    lpt["has_potentially_restrictive_license_terms"] == true
        || lpt["license_terms"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|term| {
                term.as_object().is_some_and(|fields| {
                    fields.iter().any(|(name, value)| {
                        name.starts_with("restricted_")
                            && value.as_array().is_some_and(|list| !list.is_empty())
                    })
                })
            })
}

/// An LPT's state as our [`ApprovalState`] \[D\]: a completed purchase is approved, or
/// restricted when its terms restrict use; a cancelled or failed one is rejected; other
/// known states are pending; a missing state is unknown.
pub fn approval_state(lpt: &Value) -> ApprovalState {
    match lpt.get("state").and_then(Value::as_str) {
        Some("completed") if has_restrictions(lpt) => ApprovalState::Restricted,
        Some("completed") => ApprovalState::Approved,
        Some("cancelled" | "canceled" | "failed" | "rejected") => ApprovalState::Rejected,
        Some(_) => ApprovalState::Pending,
        None => ApprovalState::Unknown,
    }
}

/// The window every licence term allows: the latest known start and the earliest known
/// end (`valid_until` or `to_be_used_until`); a bound no term gives is unknown.
pub fn rights_window(lpt: &Value) -> RightsWindow {
    let mut from: Option<DateTime<Utc>> = None;
    let mut until: Option<DateTime<Utc>> = None;
    for term in lpt["license_terms"].as_array().into_iter().flatten() {
        if let Some(start) = term["valid_from"]
            .as_str()
            .and_then(|v| parse_instant(v, false))
        {
            from = Some(from.map_or(start, |known| known.max(start)));
        }
        for field in ["valid_until", "to_be_used_until"] {
            if let Some(end) = term[field].as_str().and_then(|v| parse_instant(v, true)) {
                until = Some(until.map_or(end, |known| known.min(end)));
            }
        }
    }
    RightsWindow::new(from, until)
}

fn summary(lpt: &Value) -> Value {
    let element = &lpt["content_element"];
    json!({
        "asset_id": lpt["uuid"].clone(),
        "cart_uuid": lpt["cart_purchase_transaction_uuid"].clone(),
        "name": localised(&element["name"]),
        "provider": element.get("provider").cloned().unwrap_or(Value::Null),
        "approval": approval_state(lpt),
        "rights": rights_window(lpt),
    })
}

impl SmintioConnector {
    /// The same connector, keeping fetched bytes in (and reading delivered content from)
    /// `content`.
    pub fn with_content(mut self, content: crate::content::ContentStore) -> Self {
        self.content = content;
        self
    }

    /// A connector for `config` with `credentials`.
    pub fn new(config: &SmintioConfig, credentials: SmintioCredentials) -> Result<Self> {
        let secrets = [
            &credentials.client_id,
            &credentials.client_secret,
            &credentials.refresh_token,
        ];
        let identity = RestClient::new(
            &config.identity_url,
            config.timeout,
            Box::new(NoToken),
            &secrets,
            message_of,
        )?;
        let client = RestClient::new(
            &config.base_url,
            config.timeout,
            Box::new(RefreshGrant {
                identity,
                client_id: credentials.client_id.clone(),
                client_secret: credentials.client_secret.clone(),
                refresh_token: Mutex::new(credentials.refresh_token.clone()),
            }),
            &secrets,
            message_of,
        )?;
        Ok(Self {
            client,
            http: crate::http::build_client()?,
            timeout: config.timeout,
            poll_interval: config.poll_interval,
            actions: action_specs(),
            content: crate::content::ContentStore::scratch(),
        })
    }

    async fn feed(&self, continuation: Option<&str>, limit: u32) -> Result<Value> {
        self.client
            .call(
                &Request::get(SYNC_PATH)
                    .query_opt("continuation_uuid", continuation)
                    .query("limit", limit),
            )
            .await
    }

    async fn binaries(&self, cart_uuid: &str, asset_id: &str) -> Result<Vec<Value>> {
        let answer = self
            .client
            .call(&Request::get(format!(
                "/assets/{}/{}/binaries/for-sync",
                segment(cart_uuid),
                segment(asset_id)
            )))
            .await?;
        Ok(answer.as_array().cloned().unwrap_or_default())
    }

    /// Reads the feed from its start to its end and returns the last state of `asset_id`
    /// it holds: an LPT comes again each time it changes.
    async fn find(&self, asset_id: &str) -> Result<Value> {
        let mut continuation: Option<String> = None;
        let mut found = None;
        for _ in 0..SCAN_PAGES {
            let page = self.feed(continuation.as_deref(), SCAN_LIMIT).await?;
            let lpts = page["license_purchase_transactions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(last) = lpts.into_iter().rev().find(|lpt| lpt["uuid"] == asset_id) {
                found = Some(last);
            }
            if page["count"].as_u64().unwrap_or(0) < u64::from(SCAN_LIMIT) {
                break;
            }
            continuation = page["continuation_uuid"].as_str().map(str::to_owned);
        }
        if let Some(found) = found {
            return Ok(found);
        }
        Err(Error::permanent(
            "not_found",
            format!("smintio has no licence purchase transaction {asset_id}"),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncArgs {
    continuation_uuid: Option<String>,
    limit: Option<u32>,
    #[serde(default = "yes")]
    approved_only: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetArgs {
    asset_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadArgs {
    asset_id: String,
    cart_uuid: String,
    binary_uuid: Option<String>,
}

#[async_trait]
impl Connector for SmintioConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    fn description(&self) -> &str {
        "Smint.io: licensed stock content (licence purchase transactions) with its licence terms; read-only."
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Value> {
        let arguments = &invocation.arguments;
        match invocation.action.as_str() {
            "sync_assets" => {
                let args: SyncArgs = parse_arguments(NAME, "sync_assets", arguments)?;
                let page = self
                    .feed(args.continuation_uuid.as_deref(), args.limit.unwrap_or(10))
                    .await?;
                let assets: Vec<Value> = page["license_purchase_transactions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|lpt| lpt["can_be_synced"] != false)
                    .map(summary)
                    .filter(|summary| !args.approved_only || summary["approval"] == "approved")
                    .collect();
                Ok(json!({
                    "assets": assets,
                    "count": page.get("count").cloned().unwrap_or(json!(0)),
                    "continuation_uuid": page.get("continuation_uuid").cloned().unwrap_or(Value::Null),
                }))
            }
            "get_asset" => {
                let args: AssetArgs = parse_arguments(NAME, "get_asset", arguments)?;
                let lpt = self.find(&args.asset_id).await?;
                let cart = lpt["cart_purchase_transaction_uuid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let binaries = self.binaries(&cart, &args.asset_id).await?;
                let versions = content::versions(&binaries);
                let element = &lpt["content_element"];
                let mut asset = summary(&lpt);
                asset["metadata"] = json!({
                    "description": localised(&element["description"]),
                    "content_type": element.get("content_type").cloned().unwrap_or(Value::Null),
                    "keywords": element.get("keywords").cloned().unwrap_or_else(|| json!([])),
                    "copyright_notices": element.get("copyright_notices").cloned().unwrap_or_else(|| json!([])),
                    "is_editorial_use": element.get("is_editorial_use").cloned().unwrap_or(Value::Null),
                    "license_type": lpt["offering"].get("license_type").cloned().unwrap_or(Value::Null),
                    "project_uuid": lpt.get("project_uuid").cloned().unwrap_or(Value::Null),
                });
                asset["license_terms"] = lpt
                    .get("license_terms")
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                asset["state"] = lpt.get("state").cloned().unwrap_or(Value::Null);
                asset["versions"] = json!(versions);
                Ok(asset)
            }
            "get_download_link" => {
                let args: DownloadArgs = parse_arguments(NAME, "get_download_link", arguments)?;
                let binaries = self.binaries(&args.cart_uuid, &args.asset_id).await?;
                let binary = match &args.binary_uuid {
                    Some(uuid) => binaries
                        .iter()
                        .find(|binary| binary["uuid"] == uuid.as_str()),
                    None => content::latest(&binaries, "master").or_else(|| binaries.first()),
                }
                .ok_or_else(|| {
                    Error::permanent(
                        "not_found",
                        format!(
                            "smintio asset {} has no binary {}",
                            args.asset_id,
                            args.binary_uuid.as_deref().unwrap_or("(any)")
                        ),
                    )
                })?;
                let url = required(binary, "/download_url", "smintio binary")?.clone();
                Ok(json!({
                    "asset_id": args.asset_id, "binary_uuid": binary["uuid"].clone(), "url": url,
                    "file_name": binary.get("recommended_file_name").cloned().unwrap_or(Value::Null),
                    "valid_for_secs": 3600,
                }))
            }
            "fetch_content" => {
                let args: FetchContentArgs = parse_arguments(NAME, "fetch_content", arguments)?;
                self.fetch_content(args).await
            }
            other => Err(Error::permanent(
                "unknown_action",
                format!("smintio has no action {other:?}"),
            )),
        }
    }

    fn change_feed(self: Arc<Self>) -> Option<crate::feed::SharedFeed> {
        Some(self)
    }

    fn events(&self) -> &[crate::EventSpec] {
        &events::EVENTS
    }

    /// Both events report the asset's licence window (`observed_rights`).
    fn event_effects(&self, event: &str, payload: &Value) -> EventEffects {
        match event {
            feed::ASSET_CHANGED | feed::LICENCE_CHANGED => EventEffects {
                ledger: Vec::new(),
                rights: ObservedRights::read_all(payload).unwrap_or_default(),
            },
            _ => EventEffects::default(),
        }
    }
}

fn action_specs() -> Vec<ActionSpec> {
    let nullable = json!({"type": ["string", "null"]});
    let summary_properties = json!({
        "asset_id": string(), "cart_uuid": string(), "name": nullable.clone(), "provider": nullable.clone(),
        "approval": ApprovalState::schema(), "rights": RightsWindow::schema()
    });
    let summary = object(
        &["asset_id", "cart_uuid", "approval", "rights"],
        summary_properties.clone(),
    );
    let mut asset_properties = summary_properties;
    asset_properties["metadata"] = json!({"type": "object"});
    asset_properties["license_terms"] = array_of(json!({"type": "object"}));
    asset_properties["state"] = nullable.clone();
    asset_properties["versions"] = array_of(version_schema());
    let id = json!({"type": "string", "minLength": 1});
    let fetch_content = action(
        "fetch_content",
        "Copy a licensed asset's binary (the master, or the binary type `rendition` names; the latest \
         version unless `version` names another) into gridflow's content store and report it by digest \
         (SHA-256, size, type, file name) with the asset's licence window.",
        content::fetch_content_arguments(),
        object(
            &["content", "observed_rights"],
            json!({"content": Artifact::schema(), "observed_rights": ObservedRights::array_schema()}),
        ),
    )
    .with_effects(Effects {
        rights: true,
        ..Effects::default()
    });
    vec![
        fetch_content,
        action(
            "sync_assets",
            "Read the next page of licensed assets (licence purchase transactions) after a continuation token; by default only approved (completed, unrestricted) ones.",
            object(
                &[],
                json!({"continuation_uuid": string(), "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "approved_only": {"type": "boolean"}}),
            ),
            object(
                &["assets", "count", "continuation_uuid"],
                json!({"assets": array_of(summary), "count": {"type": "integer"}, "continuation_uuid": nullable.clone()}),
            ),
        ),
        action(
            "get_asset",
            "Read a licensed asset with its metadata, licence terms, binaries (every version; no digest: Smint.io gives none), approval state and rights window.",
            object(&["asset_id"], json!({"asset_id": id.clone()})),
            object(
                &[
                    "asset_id",
                    "cart_uuid",
                    "approval",
                    "rights",
                    "metadata",
                    "versions",
                ],
                asset_properties,
            ),
        ),
        action(
            "get_download_link",
            "Get the signed download URL (valid for at most an hour) of an asset's master binary, or of the one named.",
            object(
                &["asset_id", "cart_uuid"],
                json!({"asset_id": id.clone(), "cart_uuid": id, "binary_uuid": string()}),
            ),
            object(
                &["asset_id", "binary_uuid", "url"],
                json!({"asset_id": string(), "binary_uuid": string(), "url": string(),
                "file_name": nullable, "valid_for_secs": {"type": "integer"}}),
            ),
        ),
    ]
}

/// One entry of `get_asset`'s `versions`: a binary; Smint.io gives no digest, size or
/// date, so those are `null`.
fn version_schema() -> Value {
    let nullable = |kind: &str| json!({"type": [kind, "null"]});
    json!({"type": "object",
           "required": ["version", "sha256", "size", "file_name", "created_at"],
           "properties": {"version": string(), "sha256": nullable("string"), "size": nullable("integer"),
                          "file_name": nullable("string"), "created_at": nullable("string"),
                          "binary_uuid": string(), "binary_type": nullable("string")}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_follows_state_and_restrictions() {
        assert_eq!(
            approval_state(
                &json!({"state": "completed", "license_terms": [{"restricted_geographies": []}]})
            ),
            ApprovalState::Approved
        );
        assert_eq!(
            approval_state(
                &json!({"state": "completed", "license_terms": [{"restricted_usages": [{"culture": "en"}]}]})
            ),
            ApprovalState::Restricted
        );
        assert_eq!(
            approval_state(&json!({"state": "pending_approval"})),
            ApprovalState::Pending
        );
        assert_eq!(approval_state(&json!({})), ApprovalState::Unknown);
    }

    #[test]
    fn the_window_is_what_every_term_allows_and_missing_is_unknown() {
        let window = rights_window(&json!({"license_terms": [
            {"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"},
            {"valid_from": "2026-02-01T00:00:00Z", "to_be_used_until": "2026-12-01T00:00:00Z"}
        ]}));
        assert_eq!(
            window.valid_from.map(|v| v.to_rfc3339()).as_deref(),
            Some("2026-02-01T00:00:00+00:00")
        );
        assert_eq!(
            window.valid_until.map(|v| v.to_rfc3339()).as_deref(),
            Some("2026-12-01T00:00:00+00:00")
        );
        assert_eq!(
            rights_window(&json!({"license_terms": [{}]})),
            RightsWindow::default()
        );
    }
}
