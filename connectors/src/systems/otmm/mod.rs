//! The `otmm` connector: OpenText Media Management, REST `otmmapi` v6 (`otmm.md`).
//!
//! Auth is the OAuth2 password grant (`POST /sessions/oauth2/token`, form, →
//! `token_info.oauth_token.accessToken`, then Bearer) \[V\], refreshed on 401.
//! Approval and rights live in model-specific metadata fields, so the approval field, the
//! values that mean approved, pending, rejected or restricted, and the rights date fields
//! are configuration; a field that is absent or holds another value normalises to
//! `unknown`, never approved, and a missing date leaves that bound unknown.
//! OTMM has no idempotency key: state-changing requests carry our
//! `X-Gridflow-Idempotency-Key` \[D\], which the simulator honours and a real server ignores.
//! Errors carry `exception_body.message`.
//! `fetch_content` streams a version's bytes into the content store and `get_asset` lists
//! every version with its digest where OTMM gives one (`content.rs`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::asset::{ApprovalState, RightsWindow, parse_instant};
use crate::config::OtmmConfig;
use crate::connector::{ActionSpec, Connector, Error, Invocation, Result};
use crate::http::Secret;
use crate::rest::{Request, RestClient, TokenSource, parse_arguments, required, segment};
use crate::schema::{action, array_of, object, string};

mod content;
mod events;
pub mod feed;

pub mod config;
pub(crate) mod setup;
pub mod simulator;

/// The connector's name.
pub const NAME: &str = "otmm";

const IDEMPOTENCY_HEADER: &str = "X-Gridflow-Idempotency-Key";

/// The credentials of the OTMM connector.
#[derive(Debug, Clone)]
pub struct OtmmCredentials {
    /// User name.
    pub username: Secret,
    /// Password.
    pub password: Secret,
    /// OAuth client id.
    pub client_id: Secret,
    /// OAuth client secret.
    pub client_secret: Secret,
}

impl OtmmCredentials {
    /// Reads the variables named by `config`.
    pub fn from_environment(config: &OtmmConfig) -> Result<Self, crate::config::Error> {
        use crate::config::credential;
        Ok(Self {
            username: credential("connectors.otmm.username_env", &config.username_env)?,
            password: credential("connectors.otmm.password_env", &config.password_env)?,
            client_id: credential("connectors.otmm.client_id_env", &config.client_id_env)?,
            client_secret: credential(
                "connectors.otmm.client_secret_env",
                &config.client_secret_env,
            )?,
        })
    }
}

/// The OTMM connector.
pub struct OtmmConnector {
    client: RestClient,
    base_url: String,
    fields: FieldMapping,
    actions: Vec<ActionSpec>,
    /// Where fetched bytes are kept and delivered content is read from.
    content: crate::content::ContentStore,
    /// How often the change poller reads ([`feed`]).
    poll_interval: std::time::Duration,
}

/// Which metadata fields and values carry approval and rights.
struct FieldMapping {
    approval_field: String,
    approved: Vec<String>,
    pending: Vec<String>,
    rejected: Vec<String>,
    restricted: Vec<String>,
    valid_from_field: Option<String>,
    valid_until_field: Option<String>,
}

impl FieldMapping {
    fn approval(&self, metadata: &BTreeMap<String, String>) -> ApprovalState {
        let Some(value) = metadata.get(&self.approval_field) else {
            return ApprovalState::Unknown;
        };
        let is = |values: &[String]| {
            values
                .iter()
                .any(|candidate| candidate.eq_ignore_ascii_case(value.trim()))
        };
        if is(&self.approved) {
            ApprovalState::Approved
        } else if is(&self.rejected) {
            ApprovalState::Rejected
        } else if is(&self.restricted) {
            ApprovalState::Restricted
        } else if is(&self.pending) {
            ApprovalState::Pending
        } else {
            ApprovalState::Unknown
        }
    }

    fn rights(&self, metadata: &BTreeMap<String, String>) -> RightsWindow {
        let read = |field: &Option<String>, end_of_day: bool| {
            field
                .as_ref()
                .and_then(|field| metadata.get(field))
                .and_then(|value| parse_instant(value, end_of_day))
        };
        RightsWindow::new(
            read(&self.valid_from_field, false),
            read(&self.valid_until_field, true),
        )
    }
}

struct PasswordGrant(OtmmCredentials);

#[async_trait]
impl TokenSource for PasswordGrant {
    async fn fetch(&self, client: &RestClient) -> Result<Secret> {
        let credentials = &self.0;
        let request = Request::new(Method::POST, "/sessions/oauth2/token").form(vec![
            ("grant_type".to_owned(), "password".to_owned()),
            (
                "username".to_owned(),
                credentials.username.expose().to_owned(),
            ),
            (
                "password".to_owned(),
                credentials.password.expose().to_owned(),
            ),
            (
                "client_id".to_owned(),
                credentials.client_id.expose().to_owned(),
            ),
            (
                "client_secret".to_owned(),
                credentials.client_secret.expose().to_owned(),
            ),
        ]);
        let answer = client.call_unauthenticated(&request, None).await?;
        let token = required(&answer, "/token_info/oauth_token/accessToken", "otmm token")?
            .as_str()
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_response",
                    "otmm token: accessToken is not a string",
                )
            })?;
        Ok(Secret::new(token))
    }
}

fn message_of(body: &Value) -> Option<String> {
    body.pointer("/exception_body/message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl OtmmConnector {
    /// The same connector, keeping fetched bytes in (and reading delivered content from)
    /// `content`.
    pub fn with_content(mut self, content: crate::content::ContentStore) -> Self {
        self.content = content;
        self
    }

    /// A connector for `config` with `credentials`.
    pub fn new(config: &OtmmConfig, credentials: OtmmCredentials) -> Result<Self> {
        let secrets = [&credentials.password, &credentials.client_secret];
        let client = RestClient::new(
            &config.base_url,
            config.timeout,
            Box::new(PasswordGrant(credentials.clone())),
            &secrets,
            message_of,
        )?;
        Ok(Self {
            client,
            base_url: config.base_url.clone(),
            fields: FieldMapping {
                approval_field: config.approval_field.clone(),
                approved: config.approved_values.clone(),
                pending: config.pending_values.clone(),
                rejected: config.rejected_values.clone(),
                restricted: config.restricted_values.clone(),
                valid_from_field: config.valid_from_field.clone(),
                valid_until_field: config.valid_until_field.clone(),
            },
            actions: action_specs(),
            content: crate::content::ContentStore::scratch(),
            poll_interval: config.poll_interval,
        })
    }

    /// The normalised view of an OTMM asset.
    fn summary(&self, asset: &Value) -> Value {
        let metadata = metadata_values(asset);
        json!({
            "asset_id": asset["asset_id"], "name": asset["name"], "mime_type": asset["mime_type"],
            "version": asset["version"], "latest_version": asset["latest_version"], "original_asset_id": asset["original_asset_id"],
            "approval": self.fields.approval(&metadata), "rights": self.fields.rights(&metadata),
            "expired": asset["expired"].as_bool(), "metadata": metadata,
        })
    }

    async fn fetch_asset(&self, asset_id: &str) -> Result<Value> {
        let request = Request::get(format!("/assets/{}", segment(asset_id)))
            .query("load_type", "metadata")
            .query("level_of_detail", "full");
        let answer = self.client.call(&request).await?;
        Ok(required(&answer, "/asset_resource/asset", "otmm asset")?.clone())
    }
}

/// The metadata tree flattened to `field id → value` (display values for tabular fields
/// are joined with `; `).
fn metadata_values(asset: &Value) -> BTreeMap<String, String> {
    fn walk(elements: &Value, into: &mut BTreeMap<String, String>) {
        for element in elements.as_array().into_iter().flatten() {
            if let Some(children) = element.get("metadata_element_list") {
                walk(children, into);
            }
            let Some(id) = element["id"].as_str() else {
                continue;
            };
            let value = &element["value"]["value"];
            let text = match (value.get("value"), value.get("display_value")) {
                (Some(Value::String(text)), _) | (_, Some(Value::String(text))) => {
                    Some(text.clone())
                }
                (Some(Value::Null) | None, _) => None,
                (Some(other), _) => Some(other.to_string()),
            };
            if let Some(text) = text {
                into.insert(id.to_owned(), text);
            } else if let Some(values) = element.get("values").and_then(Value::as_array) {
                let joined: Vec<String> = values
                    .iter()
                    .filter_map(|row| row.pointer("/value/display_value").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect();
                if !joined.is_empty() {
                    into.insert(id.to_owned(), joined.join("; "));
                }
            }
        }
    }
    let mut values = BTreeMap::new();
    walk(&asset["metadata"]["metadata_element_list"], &mut values);
    values
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: Option<String>,
    #[serde(default = "yes")]
    approved_only: bool,
    after: Option<u32>,
    limit: Option<u32>,
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
struct UpdateArgs {
    asset_id: String,
    fields: BTreeMap<String, String>,
    #[serde(default = "default_section")]
    section_id: String,
}

fn default_section() -> String {
    "ARTESIA.CATEGORY.GENERAL".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionArgs {
    asset_id: String,
    file_name: String,
    source_url: Option<String>,
    comment: Option<String>,
}

#[async_trait]
impl Connector for OtmmConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    fn description(&self) -> &str {
        "OpenText Media Management: the brand's master assets, their metadata, approval and rights."
    }

    fn events(&self) -> &[crate::EventSpec] {
        &events::EVENTS
    }

    fn change_feed(self: std::sync::Arc<Self>) -> Option<crate::feed::SharedFeed> {
        Some(self)
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Value> {
        let action_key = invocation.action_key();
        let key = action_key.as_str();
        let arguments = &invocation.arguments;
        match invocation.action.as_str() {
            "search_assets" => self.search_assets(arguments).await,
            "get_asset" => self.get_asset(arguments).await,
            "get_download_link" => self.get_download_link(arguments).await,
            "update_metadata" => self.update_metadata(arguments, key).await,
            "create_version" => self.create_version(arguments, key).await,
            "fetch_content" => self.fetch_content(arguments).await,
            other => Err(Error::permanent(
                "unknown_action",
                format!("otmm has no action {other:?}"),
            )),
        }
    }
}

/// One method per action; [`Connector::invoke`] picks one by name.
impl OtmmConnector {
    /// `otmm.search_assets`.
    async fn search_assets(&self, arguments: &Value) -> Result<Value> {
        let args: SearchArgs = parse_arguments(NAME, "search_assets", arguments)?;
        let mut form = vec![
            (
                "keyword_query".to_owned(),
                args.query.unwrap_or_else(|| "*".to_owned()),
            ),
            ("load_type".to_owned(), "metadata".to_owned()),
            ("level_of_detail".to_owned(), "full".to_owned()),
            ("after".to_owned(), args.after.unwrap_or(0).to_string()),
            ("limit".to_owned(), args.limit.unwrap_or(25).to_string()),
        ];
        if args.approved_only
            && let Some(approved) = self.fields.approved.first()
        {
            let conditions = json!({"search_condition_list": {"search_condition": [{
                "type": "com.artesia.search.SearchScalarCondition", "metadata_field_id": self.fields.approval_field,
                "relational_operator_id": "ARTESIA.OPERATOR.CHAR.CONTAINS", "value": approved}]}});
            form.push(("search_condition_list".to_owned(), conditions.to_string()));
        }
        let answer = self
            .client
            .call(&Request::new(Method::POST, "/search/text").form(form))
            .await?;
        let result = required(
            &answer,
            "/search_result_resource/search_result",
            "otmm search",
        )?;
        let total = result["total_hit_count"].as_u64().unwrap_or(0);
        let offset = result["offset"].as_u64().unwrap_or(0);
        let hits = result["hit_count"].as_u64().unwrap_or(0);
        let assets: Vec<Value> = answer["search_result_resource"]["asset_list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|asset| self.summary(asset))
            // The condition narrows the search; the normalised state decides, so a
            // value that merely contains the approved word is not taken as approved.
            .filter(|summary| !args.approved_only || summary["approval"] == "approved")
            .collect();
        let next_after = (offset + hits < total).then_some(offset + hits);
        Ok(json!({"assets": assets, "total": total, "next_after": next_after}))
    }

    /// `otmm.get_asset`.
    async fn get_asset(&self, arguments: &Value) -> Result<Value> {
        let args: AssetArgs = parse_arguments(NAME, "get_asset", arguments)?;
        let asset = self.fetch_asset(&args.asset_id).await?;
        let versions: Vec<Value> = self
            .versions(&args.asset_id)
            .await?
            .iter()
            .filter_map(content::version_entry)
            .collect();
        let mut output = self.summary(&asset);
        output["versions"] = Value::Array(versions);
        Ok(output)
    }

    /// `otmm.get_download_link`.
    async fn get_download_link(&self, arguments: &Value) -> Result<Value> {
        let args: AssetArgs = parse_arguments(NAME, "get_download_link", arguments)?;
        let asset = self.fetch_asset(&args.asset_id).await?;
        let master = required(&asset, "/master_content_info", "otmm asset")?;
        let path = required(master, "/url", "otmm master content")?
            .as_str()
            .unwrap_or_default();
        let url = reqwest::Url::parse(&self.base_url)
            .and_then(|base| base.join(path))
            .map_err(|error| {
                Error::permanent(
                    "invalid_response",
                    format!("otmm master content url: {error}"),
                )
            })?;
        Ok(
            json!({"asset_id": args.asset_id, "url": url.as_str(), "file_name": master["name"], "mime_type": master["mime_type"],
                  "content_size": master["content_size"], "requires_auth": true}),
        )
    }

    /// `otmm.update_metadata`.
    async fn update_metadata(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: UpdateArgs = parse_arguments(NAME, "update_metadata", arguments)?;
        if args.fields.is_empty() {
            return Err(Error::invalid_arguments(
                "otmm.update_metadata: fields is empty",
            ));
        }
        let entries: Vec<Value> = args
            .fields
            .iter()
            .map(|(field, value)| json!({"metadata_field_id": field, "metadata_value": {"value": {"type": "string", "value": value}}}))
            .collect();
        let body = json!({"bulk_edit_request_param": {"bulk_edit_request": {
            "context": {"type": "com.artesia.asset.selection.AssetIdsSelectionContext", "asset_ids": [args.asset_id], "include_descendants": "NONE"},
            "metadata_values": {"metadata_edit_id_value_list": [{"metadata_section_id": args.section_id, "field_id_value_entries": entries}]}}}});
        let answer = self
            .client
            .call(
                &Request::new(Method::PATCH, "/assets")
                    .json(body)
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        let failed = answer
            .pointer("/bulk_asset_result_representation/bulk_asset_result/failed_object_list")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if failed > 0 {
            return Err(Error::permanent(
                "update_failed",
                format!(
                    "otmm refused the metadata update of asset {}",
                    args.asset_id
                ),
            ));
        }
        Ok(json!({"asset_id": args.asset_id, "updated": args.fields.keys().collect::<Vec<_>>()}))
    }

    /// `otmm.create_version`.
    async fn create_version(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: VersionArgs = parse_arguments(NAME, "create_version", arguments)?;
        let mut form = vec![("file_name".to_owned(), args.file_name)];
        if let Some(source_url) = args.source_url {
            form.push(("source_url".to_owned(), source_url));
        }
        if let Some(comment) = args.comment {
            form.push(("comment".to_owned(), comment));
        }
        let path = format!("/assets/{}/versions", segment(&args.asset_id));
        let answer = self
            .client
            .call(
                &Request::new(Method::POST, path)
                    .form(form)
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        Ok(
            json!({"previous_asset_id": args.asset_id, "asset_id": required(&answer, "/asset_id", "otmm version")?, "version": answer["version"],
                  "job_id": answer["job_handle"]["job_id"]}),
        )
    }
}

/// The properties of an asset summary (search hits, changes of the feed).
fn summary_properties() -> Value {
    json!({
        "asset_id": string(), "name": {"type": ["string", "null"]}, "mime_type": {"type": ["string", "null"]},
        "version": {"type": ["integer", "null"]}, "latest_version": {"type": ["boolean", "null"]}, "original_asset_id": {"type": ["string", "null"]},
        "approval": ApprovalState::schema(), "rights": RightsWindow::schema(), "expired": {"type": ["boolean", "null"]},
        "metadata": {"type": "object", "additionalProperties": string()}
    })
}

fn action_specs() -> Vec<ActionSpec> {
    let summary_properties = summary_properties();
    let summary = json!({"type": "object", "required": ["asset_id", "approval", "rights", "metadata"], "properties": summary_properties.clone()});
    let mut asset_properties = summary_properties;
    asset_properties["versions"] = array_of(content::version_schema());
    vec![
        action(
            "search_assets",
            "Search assets by keyword; by default only approved ones (by the configured approval field).",
            object(
                &[],
                json!({"query": string(), "approved_only": {"type": "boolean"}, "after": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000}}),
            ),
            object(
                &["assets", "total", "next_after"],
                json!({"assets": array_of(summary), "total": {"type": "integer"}, "next_after": {"type": ["integer", "null"]}}),
            ),
        ),
        action(
            "get_asset",
            "Read an asset with its metadata, approval state, rights window and every version (number, SHA-256 where OTMM gives one, size, file name).",
            object(&["asset_id"], json!({"asset_id": string()})),
            json!({"type": "object", "required": ["asset_id", "approval", "rights", "metadata", "versions"], "properties": asset_properties}),
        ),
        action(
            "get_download_link",
            "Get the URL of an asset's master content (fetch it just before downloading; it needs the connector's session).",
            object(&["asset_id"], json!({"asset_id": string()})),
            object(
                &["asset_id", "url"],
                json!({"asset_id": string(), "url": string(), "file_name": {"type": ["string", "null"]},
                "mime_type": {"type": ["string", "null"]}, "content_size": {"type": ["integer", "null"]}, "requires_auth": {"type": "boolean"}}),
            ),
        ),
        action(
            "update_metadata",
            "Set metadata fields (field id → text value) on an asset.",
            object(
                &["asset_id", "fields"],
                json!({"asset_id": string(), "fields": {"type": "object", "minProperties": 1, "additionalProperties": string()},
                "section_id": string()}),
            ),
            object(
                &["asset_id", "updated"],
                json!({"asset_id": string(), "updated": array_of(string())}),
            ),
        ),
        action(
            "create_version",
            "Create a new version of an asset from a file name and a source URL, for the content team to complete.",
            object(
                &["asset_id", "file_name"],
                json!({"asset_id": string(), "file_name": {"type": "string", "minLength": 1}, "source_url": string(), "comment": string()}),
            ),
            object(
                &["previous_asset_id", "asset_id"],
                json!({"previous_asset_id": string(), "asset_id": string(), "version": {"type": ["integer", "null"]},
                "job_id": {"type": ["string", "null"]}}),
            ),
        ),
        content::fetch_content_spec(),
    ]
}
