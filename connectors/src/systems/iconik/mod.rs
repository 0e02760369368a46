//! The `iconik` connector: the iconik MAM REST API as described in `iconik.md`: services
//! under `<base>/<service>/v1/…` with trailing slashes, `App-ID` and `Auth-Token` headers
//! on every request \[V\], page paging (`page`, `per_page` → `{objects, page, pages, total}`),
//! errors as `{"errors": [...]}` or `{"errors": {field: [...]}}` \[V\].
//!
//! The auth token is obtained with the integration user's e-mail and password at
//! `POST /auth/v1/auth/simple/login/` \[I\] and obtained again when the system answers 401.
//! Approval is not part of the asset: it is read from the approvals endpoint (`N/A`,
//! `REQUESTED`, `APPROVED`, `NOT_APPROVED`, `MIXED`). The rights window comes from two
//! metadata fields of the configured view \[D\]. State-changing requests carry our
//! `X-Gridflow-Idempotency-Key` \[D\]: iconik defines no idempotency header.
//! `fetch_content` streams a version's original file into the content store over its
//! signed download URL, and `get_asset` lists every version with its digest where iconik
//! gives one (`content.rs`).

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::asset::{ApprovalState, RightsWindow, parse_instant};
use crate::config::IconikConfig;
use crate::connector::{ActionSpec, Connector, Error, Invocation, Result};
use crate::http::Secret;
use crate::rest::{Request, RestClient, TokenSource, parse_arguments, required, segment};
use crate::schema::{action, array_of, object, string};

pub mod config;
mod content;
mod events;
pub(crate) mod setup;
pub mod simulator;

/// The connector's name.
pub const NAME: &str = "iconik";

/// The path of the login that issues an auth token \[I\].
pub const LOGIN_PATH: &str = "/auth/v1/auth/simple/login/";

const IDEMPOTENCY_HEADER: &str = "X-Gridflow-Idempotency-Key";

/// The credentials of the iconik connector.
#[derive(Debug, Clone)]
pub struct IconikCredentials {
    /// The application id, sent as `App-ID`.
    pub app_id: Secret,
    /// The integration user's e-mail.
    pub email: Secret,
    /// The integration user's password.
    pub password: Secret,
}

impl IconikCredentials {
    /// Reads the variables named by `config`.
    pub fn from_environment(config: &IconikConfig) -> Result<Self, crate::config::Error> {
        Ok(Self {
            app_id: crate::config::credential("connectors.iconik.app_id_env", &config.app_id_env)?,
            email: crate::config::credential("connectors.iconik.email_env", &config.email_env)?,
            password: crate::config::credential(
                "connectors.iconik.password_env",
                &config.password_env,
            )?,
        })
    }
}

/// The iconik connector.
pub struct IconikConnector {
    client: RestClient,
    view_id: String,
    valid_from_field: String,
    valid_until_field: String,
    actions: Vec<ActionSpec>,
    /// Where fetched bytes are kept and delivered content is read from.
    content: crate::content::ContentStore,
}

struct SimpleLogin {
    credentials: IconikCredentials,
}

#[async_trait]
impl TokenSource for SimpleLogin {
    async fn fetch(&self, client: &RestClient) -> Result<Secret> {
        let request = Request::new(Method::POST, LOGIN_PATH).json(json!({
            "app_id": self.credentials.app_id.expose(),
            "email": self.credentials.email.expose(),
            "password": self.credentials.password.expose(),
        }));
        let answer = client.call_unauthenticated(&request, None).await?;
        let token = required(&answer, "/token", "iconik login")?
            .as_str()
            .ok_or_else(|| {
                Error::permanent("invalid_response", "iconik login: token is not a string")
            })?;
        Ok(Secret::new(token))
    }
}

/// The system's message in an `{"errors": …}` body.
fn message_of(body: &Value) -> Option<String> {
    match body.get("errors")? {
        Value::Array(errors) => Some(
            errors
                .iter()
                .map(|error| {
                    error
                        .as_str()
                        .map_or_else(|| error.to_string(), str::to_owned)
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Value::Object(fields) => Some(
            fields
                .iter()
                .map(|(field, messages)| {
                    let messages = match messages {
                        Value::Array(list) => list
                            .iter()
                            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(", "),
                        other => other
                            .as_str()
                            .map_or_else(|| other.to_string(), str::to_owned),
                    };
                    format!("{field}: {messages}")
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Value::String(message) => Some(message.clone()),
        _ => None,
    }
}

/// iconik's approval status as our [`ApprovalState`]; `MIXED` (approvers disagree) is
/// pending, `N/A` and anything unreadable unknown.
pub fn approval_state(status: Option<&str>) -> ApprovalState {
    match status {
        Some("APPROVED") => ApprovalState::Approved,
        Some("REQUESTED" | "MIXED") => ApprovalState::Pending,
        Some("NOT_APPROVED") => ApprovalState::Rejected,
        _ => ApprovalState::Unknown,
    }
}

/// The first value of `field` in an iconik metadata document, as text.
fn first_value(values: &Value, field: &str) -> Option<String> {
    let value = values
        .get("metadata_values")?
        .get(field)?
        .get("field_values")?
        .as_array()?
        .first()?
        .get("value")?;
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Every field of a metadata document as field → list of values.
fn flatten_metadata(values: &Value) -> Map<String, Value> {
    let mut flat = Map::new();
    if let Some(fields) = values.get("metadata_values").and_then(Value::as_object) {
        for (field, entry) in fields {
            let list: Vec<Value> = entry
                .get("field_values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|value| value.get("value").cloned())
                .collect();
            flat.insert(field.clone(), Value::Array(list));
        }
    }
    flat
}

impl IconikConnector {
    /// The same connector, keeping fetched bytes in (and reading delivered content from)
    /// `content`.
    pub fn with_content(mut self, content: crate::content::ContentStore) -> Self {
        self.content = content;
        self
    }

    /// A connector for `config` with `credentials`.
    pub fn new(config: &IconikConfig, credentials: IconikCredentials) -> Result<Self> {
        let secrets = [
            &credentials.app_id,
            &credentials.email,
            &credentials.password,
        ];
        let client = RestClient::new(
            &config.base_url,
            config.timeout,
            Box::new(SimpleLogin {
                credentials: credentials.clone(),
            }),
            &secrets,
            message_of,
        )?
        .with_token_header("Auth-Token")
        .with_fixed_header("App-ID", &credentials.app_id)?;
        Ok(Self {
            client,
            view_id: config.metadata_view_id.clone(),
            valid_from_field: config.valid_from_field.clone(),
            valid_until_field: config.valid_until_field.clone(),
            actions: action_specs(),
            content: crate::content::ContentStore::scratch(),
        })
    }

    fn rights(&self, metadata: &Value) -> RightsWindow {
        RightsWindow::new(
            first_value(metadata, &self.valid_from_field).and_then(|v| parse_instant(&v, false)),
            first_value(metadata, &self.valid_until_field).and_then(|v| parse_instant(&v, true)),
        )
    }

    async fn approval(&self, asset_id: &str) -> Result<(ApprovalState, Value)> {
        let answer = self
            .client
            .call(&Request::get(format!(
                "/assets/v1/assets/{}/approvals/request/",
                segment(asset_id)
            )))
            .await?;
        let status = answer.get("status").and_then(Value::as_str);
        Ok((approval_state(status), json!(status)))
    }

    async fn metadata(&self, asset_id: &str, view_id: &str) -> Result<Value> {
        self.client
            .call(&Request::get(format!(
                "/metadata/v1/assets/{}/views/{}/",
                segment(asset_id),
                segment(view_id)
            )))
            .await
    }

    async fn asset(&self, asset_id: &str, view_id: &str) -> Result<Value> {
        let asset = self
            .client
            .call(&Request::get(format!(
                "/assets/v1/assets/{}/",
                segment(asset_id)
            )))
            .await?;
        let (approval, approval_status) = self.approval(asset_id).await?;
        let metadata = self.metadata(asset_id, view_id).await?;
        let files = self.files(asset_id).await?;
        Ok(json!({
            "asset_id": required(&asset, "/id", "iconik asset")?.clone(),
            "title": asset.get("title").cloned().unwrap_or(Value::Null),
            "status": asset.get("status").cloned().unwrap_or(Value::Null),
            "approval": approval,
            "approval_status": approval_status,
            "rights": self.rights(&metadata),
            "metadata": flatten_metadata(&metadata),
            "versions": content::version_entries(&asset, &files),
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: Option<String>,
    #[serde(default = "yes")]
    approved_only: bool,
    page: Option<u32>,
    per_page: Option<u32>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetArgs {
    asset_id: String,
    view_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadArgs {
    asset_id: String,
    file_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMetadataArgs {
    asset_id: String,
    view_id: Option<String>,
    fields: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVersionArgs {
    asset_id: String,
    source_version_id: Option<String>,
    #[serde(default = "yes")]
    copy_metadata: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestApprovalArgs {
    asset_id: String,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    min_number: Option<u32>,
}

#[async_trait]
impl Connector for IconikConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    fn description(&self) -> &str {
        "iconik: media assets with versions, approvals per asset and metadata views."
    }

    fn events(&self) -> &[crate::EventSpec] {
        &events::EVENTS
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
            "request_approval" => self.request_approval(arguments, key).await,
            "fetch_content" => self.fetch_content(arguments).await,
            other => Err(Error::permanent(
                "unknown_action",
                format!("iconik has no action {other:?}"),
            )),
        }
    }
}

/// One method per action; [`Connector::invoke`] picks one by name.
impl IconikConnector {
    /// `iconik.search_assets`.
    async fn search_assets(&self, arguments: &Value) -> Result<Value> {
        let args: SearchArgs = parse_arguments(NAME, "search_assets", arguments)?;
        let mut body = json!({"doc_types": ["assets"]});
        if let Some(query) = args.query {
            body["query"] = json!(query);
        }
        let answer = self
            .client
            .call(
                &Request::new(Method::POST, "/search/v1/search/")
                    .query("page", args.page.unwrap_or(1))
                    .query("per_page", args.per_page.unwrap_or(50))
                    .query("save_search_history", "false")
                    .json(body),
            )
            .await?;
        // Approval cannot be searched on (iconik.md): read it per asset.
        let mut assets = Vec::new();
        for object in answer["objects"].as_array().into_iter().flatten() {
            let Some(asset_id) = object.get("id").and_then(Value::as_str) else {
                continue;
            };
            let (approval, _) = self.approval(asset_id).await?;
            if args.approved_only && !approval.is_approved() {
                continue;
            }
            assets.push(json!({
                "asset_id": asset_id,
                "title": object.get("title").cloned().unwrap_or(Value::Null),
                "approval": approval,
            }));
        }
        Ok(json!({
            "assets": assets,
            "page": answer.get("page").cloned().unwrap_or(json!(1)),
            "pages": answer.get("pages").cloned().unwrap_or(json!(1)),
            "total": answer.get("total").cloned().unwrap_or(json!(0)),
        }))
    }

    /// `iconik.get_asset`.
    async fn get_asset(&self, arguments: &Value) -> Result<Value> {
        let args: AssetArgs = parse_arguments(NAME, "get_asset", arguments)?;
        let view_id = args.view_id.as_deref().unwrap_or(&self.view_id);
        self.asset(&args.asset_id, view_id).await
    }

    /// `iconik.get_download_link`.
    async fn get_download_link(&self, arguments: &Value) -> Result<Value> {
        let args: DownloadArgs = parse_arguments(NAME, "get_download_link", arguments)?;
        let asset = segment(&args.asset_id);
        let file_id = match args.file_id {
            Some(file_id) => file_id,
            None => {
                let files = self
                    .client
                    .call(
                        &Request::get(format!("/files/v1/assets/{asset}/files/"))
                            .query("generate_signed_url", "false"),
                    )
                    .await?;
                files["objects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|file| file["status"] == "CLOSED")
                    .and_then(|file| file["id"].as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Error::permanent(
                            "not_found",
                            format!("iconik asset {} has no closed file", args.asset_id),
                        )
                    })?
            }
        };
        let answer = self
            .client
            .call(&Request::get(format!(
                "/files/v1/assets/{asset}/files/{}/download_url/",
                segment(&file_id)
            )))
            .await?;
        let url = required(&answer, "/url", "iconik download url")?.clone();
        Ok(json!({"asset_id": args.asset_id, "file_id": file_id, "url": url}))
    }

    /// `iconik.update_metadata`.
    async fn update_metadata(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: UpdateMetadataArgs = parse_arguments(NAME, "update_metadata", arguments)?;
        if args.fields.is_empty() {
            return Err(Error::invalid_arguments(
                "iconik.update_metadata: fields must name at least one field",
            ));
        }
        let view_id = args.view_id.as_deref().unwrap_or(&self.view_id);
        let mut values = Map::new();
        let mut updated = Vec::new();
        for (field, value) in args.fields {
            let list = match value {
                Value::Array(list) => list,
                single => vec![single],
            };
            let field_values: Vec<Value> = list
                .into_iter()
                .map(|value| json!({"value": value}))
                .collect();
            values.insert(field.clone(), json!({"field_values": field_values}));
            updated.push(field);
        }
        let path = format!(
            "/metadata/v1/assets/{}/views/{}/",
            segment(&args.asset_id),
            segment(view_id)
        );
        self.client
            .call(
                &Request::new(Method::PUT, path)
                    .json(json!({"metadata_values": values}))
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        Ok(json!({"asset_id": args.asset_id, "updated": updated}))
    }

    /// `iconik.create_version`.
    async fn create_version(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: CreateVersionArgs = parse_arguments(NAME, "create_version", arguments)?;
        let mut body = json!({"copy_metadata": args.copy_metadata, "copy_segments": false});
        if let Some(source) = args.source_version_id {
            body["source_version_id"] = json!(source);
        }
        let path = format!("/assets/v1/assets/{}/versions/", segment(&args.asset_id));
        let answer = self
            .client
            .call(
                &Request::new(Method::POST, path)
                    .json(body)
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        let versions = answer["versions"].as_array().cloned().unwrap_or_default();
        let newest = versions
            .iter()
            .max_by(|a, b| {
                a["date_created"]
                    .as_str()
                    .unwrap_or("")
                    .cmp(b["date_created"].as_str().unwrap_or(""))
            })
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_response",
                    "iconik new version: response lists no versions",
                )
            })?;
        Ok(json!({
            "asset_id": args.asset_id,
            "version_id": newest["id"].clone(),
            "status": newest["status"].clone(),
            "versions": versions.len(),
        }))
    }

    /// `iconik.request_approval`.
    async fn request_approval(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: RequestApprovalArgs = parse_arguments(NAME, "request_approval", arguments)?;
        if args.users.is_empty() && args.groups.is_empty() {
            return Err(Error::invalid_arguments(
                "iconik.request_approval: name at least one user or group",
            ));
        }
        let path = format!(
            "/assets/v1/assets/{}/approvals/request/",
            segment(&args.asset_id)
        );
        let answer = self
            .client
            .call(
                &Request::new(Method::POST, path)
                    .json(json!({"users": args.users, "groups": args.groups,
                                 "externals": [], "min_number": args.min_number.unwrap_or(1)}))
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        let status = answer.get("status").and_then(Value::as_str);
        Ok(
            json!({"asset_id": args.asset_id, "approval": approval_state(status), "approval_status": status}),
        )
    }
}

fn action_specs() -> Vec<ActionSpec> {
    let nullable = json!({"type": ["string", "null"]});
    let summary = object(
        &["asset_id", "approval"],
        json!({"asset_id": string(), "title": nullable.clone(), "approval": ApprovalState::schema()}),
    );
    let asset_id = json!({"type": "string", "minLength": 1});
    vec![
        action(
            "search_assets",
            "Search assets by keyword; by default only approved ones (approval read per asset).",
            object(
                &[],
                json!({"query": string(), "approved_only": {"type": "boolean"},
                "page": {"type": "integer", "minimum": 1}, "per_page": {"type": "integer", "minimum": 1, "maximum": 500}}),
            ),
            object(
                &["assets", "page", "pages", "total"],
                json!({"assets": array_of(summary), "page": {"type": "integer"}, "pages": {"type": "integer"}, "total": {"type": "integer"}}),
            ),
        ),
        action(
            "get_asset",
            "Read an asset with its metadata (of the configured or given view), approval state, rights window and every version (id, SHA-256 where iconik gives one, size, file name).",
            object(
                &["asset_id"],
                json!({"asset_id": asset_id.clone(), "view_id": string()}),
            ),
            object(
                &["asset_id", "approval", "rights", "metadata", "versions"],
                json!({"asset_id": string(), "title": nullable.clone(), "status": nullable.clone(),
                "approval": ApprovalState::schema(), "approval_status": nullable.clone(), "rights": RightsWindow::schema(),
                "metadata": {"type": "object", "additionalProperties": {"type": "array"}},
                "versions": array_of(content::version_schema())}),
            ),
        ),
        action(
            "get_download_link",
            "Get a signed download URL of an asset's original file (the first closed file unless one is named).",
            object(
                &["asset_id"],
                json!({"asset_id": asset_id.clone(), "file_id": string()}),
            ),
            object(
                &["asset_id", "file_id", "url"],
                json!({"asset_id": string(), "file_id": string(), "url": string()}),
            ),
        ),
        action(
            "update_metadata",
            "Replace the values of metadata fields (field → value or list of values) in a view.",
            object(
                &["asset_id", "fields"],
                json!({"asset_id": asset_id.clone(), "view_id": string(),
                "fields": {"type": "object", "minProperties": 1}}),
            ),
            object(
                &["asset_id", "updated"],
                json!({"asset_id": string(), "updated": array_of(string())}),
            ),
        ),
        action(
            "create_version",
            "Add a new version to an asset (in progress until its file is uploaded), copying metadata by default.",
            object(
                &["asset_id"],
                json!({"asset_id": asset_id.clone(), "source_version_id": string(), "copy_metadata": {"type": "boolean"}}),
            ),
            object(
                &["asset_id", "version_id", "status", "versions"],
                json!({"asset_id": string(), "version_id": string(), "status": string(), "versions": {"type": "integer"}}),
            ),
        ),
        action(
            "request_approval",
            "Ask users or groups of the content team to approve an asset.",
            object(
                &["asset_id"],
                json!({"asset_id": asset_id, "users": array_of(string()), "groups": array_of(string()),
                "min_number": {"type": "integer", "minimum": 1}}),
            ),
            object(
                &["asset_id", "approval"],
                json!({"asset_id": string(), "approval": ApprovalState::schema(), "approval_status": nullable}),
            ),
        ),
        content::fetch_content_spec(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_statuses_map_and_missing_is_unknown() {
        assert_eq!(approval_state(Some("APPROVED")), ApprovalState::Approved);
        assert_eq!(approval_state(Some("REQUESTED")), ApprovalState::Pending);
        assert_eq!(approval_state(Some("MIXED")), ApprovalState::Pending);
        assert_eq!(
            approval_state(Some("NOT_APPROVED")),
            ApprovalState::Rejected
        );
        assert_eq!(approval_state(Some("N/A")), ApprovalState::Unknown);
        assert_eq!(approval_state(None), ApprovalState::Unknown);
    }

    #[test]
    fn both_error_shapes_give_the_message() {
        assert_eq!(
            message_of(&json!({"errors": ["Token is invalid"]})).as_deref(),
            Some("Token is invalid")
        );
        assert_eq!(
            message_of(&json!({"errors": {"title": ["is required"]}})).as_deref(),
            Some("title: is required")
        );
        assert_eq!(message_of(&json!({"detail": "x"})), None);
    }
}
