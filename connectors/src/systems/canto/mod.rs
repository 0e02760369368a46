//! The `canto` connector: the Canto DAM REST API as described in `canto.md`: OAuth2 client
//! credentials at `POST <oauth>/oauth/api/oauth2/token` with `app_id`, `app_secret` and
//! `grant_type` in the query string, answered in camelCase (`accessToken`) \[V\]; then
//! `Authorization: Bearer` on `/api/v1/…` \[V\]. Content is addressed by scheme and id;
//! search pages with `start` + `limit` → `{results, found, limit}` \[V\]; metadata is
//! written with `PUT /api/v1/batch/edit`, answered with the text `success` \[V\]. Error
//! bodies are undocumented: the simulator's `{"status":"error","message":…}` \[D\] and plain
//! text are both read. State-changing requests carry our `X-Gridflow-Idempotency-Key` \[D\].
//!
//!
//! `create_version`, Canto's upload flow, lives in `upload.rs`; `fetch_content` (a
//! version's bytes into the content store, by digest) and the version list of `get_asset`
//! in `content.rs`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::asset::{ApprovalState, RightsWindow, parse_instant};
use crate::config::CantoConfig;
use crate::connector::{ActionSpec, Connector, Effects, Error, Invocation, Result};
use crate::content::Artifact;
use crate::effects::ObservedRights;
use crate::http::{self, Secret};
use crate::rest::{Request, RestClient, TokenSource, parse_arguments, required, segment};
use crate::schema::{action, array_of, object, string};

pub mod config;
mod content;
mod events;
pub(crate) mod setup;
pub mod simulator;
mod upload;

use content::FetchContentArgs;
use upload::CreateVersionArgs;

/// The connector's name.
pub const NAME: &str = "canto";

/// The token path on the OAuth server.
pub const TOKEN_PATH: &str = "/oauth/api/oauth2/token";

const IDEMPOTENCY_HEADER: &str = "X-Gridflow-Idempotency-Key";

/// The largest file `create_version` uploads, given inline or fetched from `source_url`.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// The fields of Canto's upload setting that go into the S3 form as they are (`x-amz-meta-*`
/// defaults go too): signature version 2 on `canto.com`/`canto.global`, version 4 on
/// `canto.de` \[V\].
const FORM_FIELDS: [&str; 9] = [
    "key",
    "acl",
    "AWSAccessKeyId",
    "Policy",
    "Signature",
    "x-amz-date",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-Signature",
];

/// The form fields that are credentials of the upload, scrubbed from every S3 error.
const SENSITIVE_FORM_FIELDS: [&str; 5] = [
    "AWSAccessKeyId",
    "Policy",
    "Signature",
    "x-amz-credential",
    "x-amz-Signature",
];

const SCHEMES: [&str; 6] = [
    "image",
    "video",
    "audio",
    "document",
    "presentation",
    "other",
];

/// The credentials of the Canto connector.
#[derive(Debug, Clone)]
pub struct CantoCredentials {
    /// The App ID.
    pub app_id: Secret,
    /// The App Secret.
    pub app_secret: Secret,
}

impl CantoCredentials {
    /// Reads the variables named by `config`.
    pub fn from_environment(config: &CantoConfig) -> Result<Self, crate::config::Error> {
        Ok(Self {
            app_id: crate::config::credential("connectors.canto.app_id_env", &config.app_id_env)?,
            app_secret: crate::config::credential(
                "connectors.canto.app_secret_env",
                &config.app_secret_env,
            )?,
        })
    }
}

/// The Canto connector.
pub struct CantoConnector {
    client: RestClient,
    /// For the S3 POST and `source_url`, which get no Canto token.
    http: reqwest::Client,
    timeout: Duration,
    upload_wait: Duration,
    upload_poll_interval: Duration,
    valid_from_field: String,
    valid_until_field: String,
    actions: Vec<ActionSpec>,
    /// Where fetched bytes are kept and delivered content is read from.
    content: crate::content::ContentStore,
}

/// Client credentials against the OAuth server, which has its own host.
struct ClientCredentials {
    oauth: RestClient,
    credentials: CantoCredentials,
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn fetch(&self, _client: &RestClient) -> Result<Secret> {
        let request = Request::new(Method::POST, TOKEN_PATH)
            .query("app_id", self.credentials.app_id.expose())
            .query("app_secret", self.credentials.app_secret.expose())
            .query("grant_type", "client_credentials");
        let answer = self.oauth.call_unauthenticated(&request, None).await?;
        let token = required(&answer, "/accessToken", "canto token")?
            .as_str()
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_response",
                    "canto token: accessToken is not a string",
                )
            })?;
        Ok(Secret::new(token))
    }
}

/// The system's message: `message` (our simulator's shape), else OAuth's
/// `error_description` or `error`.
fn message_of(body: &Value) -> Option<String> {
    ["message", "error_description", "error"]
        .iter()
        .find_map(|field| body.get(*field).and_then(Value::as_str))
        .map(str::to_owned)
}

/// Canto's `approvalStatus` as our [`ApprovalState`]; anything else is unknown.
pub fn approval_state(status: Option<&str>) -> ApprovalState {
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("approved") => ApprovalState::Approved,
        Some("pending") => ApprovalState::Pending,
        Some("restricted") => ApprovalState::Restricted,
        Some("rejected") => ApprovalState::Rejected,
        _ => ApprovalState::Unknown,
    }
}

/// Reads a Canto date: RFC 3339, a calendar date, or Canto's `yyyyMMddHHmmssSSS` (UTC).
fn canto_instant(text: &str, end_of_day: bool) -> Option<chrono::DateTime<chrono::Utc>> {
    parse_instant(text, end_of_day).or_else(|| {
        let digits = text.get(..14)?;
        chrono::NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S")
            .ok()
            .map(|naive| naive.and_utc())
    })
}

impl CantoConnector {
    /// The same connector, keeping fetched bytes in (and reading delivered content from)
    /// `content`.
    pub fn with_content(mut self, content: crate::content::ContentStore) -> Self {
        self.content = content;
        self
    }

    /// A connector for `config` with `credentials`.
    pub fn new(config: &CantoConfig, credentials: CantoCredentials) -> Result<Self> {
        let secrets = [&credentials.app_id, &credentials.app_secret];
        let oauth = RestClient::new(
            &config.oauth_url,
            config.timeout,
            Box::new(NoToken),
            &secrets,
            message_of,
        )?;
        let client = RestClient::new(
            &config.base_url,
            config.timeout,
            Box::new(ClientCredentials {
                oauth,
                credentials: credentials.clone(),
            }),
            &secrets,
            message_of,
        )?;
        Ok(Self {
            client,
            http: http::build_client()?,
            timeout: config.timeout,
            upload_wait: config.upload_wait,
            upload_poll_interval: config.upload_poll_interval,
            valid_from_field: config.valid_from_field.clone(),
            valid_until_field: config.valid_until_field.clone(),
            actions: action_specs(),
            content: crate::content::ContentStore::scratch(),
        })
    }

    fn rights(&self, content: &Value) -> RightsWindow {
        let field = |name: &str| content["additional"].get(name).and_then(Value::as_str);
        RightsWindow::new(
            field(&self.valid_from_field).and_then(|v| canto_instant(v, false)),
            field(&self.valid_until_field).and_then(|v| canto_instant(v, true)),
        )
    }

    fn summary(&self, content: &Value) -> Value {
        json!({
            "asset_id": content["id"].clone(),
            "scheme": content["scheme"].clone(),
            "name": content.get("name").cloned().unwrap_or(Value::Null),
            "approval": approval_state(content.get("approvalStatus").and_then(Value::as_str)),
            "rights": self.rights(content),
        })
    }

    async fn content(&self, scheme: &str, asset_id: &str) -> Result<Value> {
        self.client
            .call(&Request::get(format!(
                "/api/v1/{}/{}",
                segment(scheme),
                segment(asset_id)
            )))
            .await
    }
}

/// The OAuth server's client needs no token of its own.
struct NoToken;

#[async_trait]
impl TokenSource for NoToken {
    async fn fetch(&self, _client: &RestClient) -> Result<Secret> {
        Err(Error::permanent(
            "invalid_configuration",
            "the canto OAuth client sends no token",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    keyword: Option<String>,
    scheme: Option<String>,
    #[serde(default = "yes")]
    approved_only: bool,
    start: Option<u32>,
    limit: Option<u32>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetArgs {
    scheme: String,
    asset_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMetadataArgs {
    scheme: String,
    asset_id: String,
    fields: Map<String, Value>,
    #[serde(default = "yes")]
    custom: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionCommentArgs {
    scheme: String,
    asset_id: String,
    version_id: String,
    comment: String,
}

#[async_trait]
impl Connector for CantoConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    fn description(&self) -> &str {
        "Canto: the brand's digital assets (images, videos, documents) with approval status, metadata and versions."
    }

    fn events(&self) -> &[crate::EventSpec] {
        &events::EVENTS
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Value> {
        let action_key = invocation.action_key();
        let key = action_key.as_str();
        let arguments = &invocation.arguments;
        match invocation.action.as_str() {
            "search_assets" => {
                let args: SearchArgs = parse_arguments(NAME, "search_assets", arguments)?;
                let path = match &args.scheme {
                    Some(scheme) => format!("/api/v1/{}", segment(scheme)),
                    None => "/api/v1/search".to_owned(),
                };
                let answer = self
                    .client
                    .call(
                        &Request::get(path)
                            .query_opt("keyword", args.keyword)
                            .query_opt("approval", args.approved_only.then_some("approved"))
                            .query("start", args.start.unwrap_or(0))
                            .query("limit", args.limit.unwrap_or(100)),
                    )
                    .await?;
                let assets: Vec<Value> = answer["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|content| self.summary(content))
                    .filter(|summary| !args.approved_only || summary["approval"] == "approved")
                    .collect();
                Ok(json!({
                    "assets": assets,
                    "found": answer.get("found").cloned().unwrap_or(json!(0)),
                    "start": args.start.unwrap_or(0),
                }))
            }
            "get_asset" => {
                let args: AssetArgs = parse_arguments(NAME, "get_asset", arguments)?;
                let content = self.content(&args.scheme, &args.asset_id).await?;
                let mut asset = self.summary(&content);
                let mut metadata = Map::new();
                for part in ["default", "additional"] {
                    if let Some(fields) = content[part].as_object() {
                        for (name, value) in fields {
                            metadata.insert(name.clone(), value.clone());
                        }
                    }
                }
                asset["metadata"] = Value::Object(metadata);
                asset["tags"] = content.get("tag").cloned().unwrap_or_else(|| json!([]));
                asset["versions"] = json!(content::versions(&content));
                asset["approval_status"] = content
                    .get("approvalStatus")
                    .cloned()
                    .unwrap_or(Value::Null);
                Ok(asset)
            }
            "get_download_link" => {
                let args: AssetArgs = parse_arguments(NAME, "get_download_link", arguments)?;
                let content = self.content(&args.scheme, &args.asset_id).await?;
                let absolute = |url: &str| {
                    if url.starts_with('/') {
                        self.client.url(url)
                    } else {
                        url.to_owned()
                    }
                };
                let url = required(&content, "/url/download", "canto content")?
                    .as_str()
                    .map(absolute)
                    .ok_or_else(|| {
                        Error::permanent(
                            "invalid_response",
                            "canto content: url.download is not a string",
                        )
                    })?;
                let direct = content["url"]["directUrlOriginal"].as_str().map(absolute);
                Ok(json!({
                    "asset_id": args.asset_id, "scheme": args.scheme, "url": url, "requires_auth": true,
                    "direct_url": direct,
                    "file_name": content.get("name").cloned().unwrap_or(Value::Null),
                }))
            }
            "update_metadata" => {
                let args: UpdateMetadataArgs = parse_arguments(NAME, "update_metadata", arguments)?;
                if args.fields.is_empty() {
                    return Err(Error::invalid_arguments(
                        "canto.update_metadata: fields must name at least one field",
                    ));
                }
                let mut updated = Vec::new();
                let properties: Vec<Value> = args
                    .fields
                    .into_iter()
                    .map(|(field, value)| {
                        updated.push(field.clone());
                        json!({"propertyId": field, "propertyValue": value, "action": "", "customField": args.custom})
                    })
                    .collect();
                let answer = self
                    .client
                    .call(
                        &Request::new(Method::PUT, "/api/v1/batch/edit")
                            .json(json!({"contents": [{"id": args.asset_id, "scheme": args.scheme}], "properties": properties}))
                            .idempotent(IDEMPOTENCY_HEADER, key)
                            .text_ok(),
                    )
                    .await?;
                if answer != "success" {
                    return Err(Error::permanent(
                        "invalid_response",
                        format!("canto batch edit answered {answer} instead of success"),
                    ));
                }
                Ok(json!({"asset_id": args.asset_id, "scheme": args.scheme, "updated": updated}))
            }
            "comment_version" => {
                let args: VersionCommentArgs = parse_arguments(NAME, "comment_version", arguments)?;
                self.client
                    .call(
                        &Request::new(Method::POST, "/api/v1/version/comment")
                            .json(json!({"scheme": args.scheme, "id": args.asset_id,
                                         "versionId": args.version_id, "comment": args.comment}))
                            .idempotent(IDEMPOTENCY_HEADER, key)
                            .text_ok(),
                    )
                    .await?;
                Ok(
                    json!({"asset_id": args.asset_id, "scheme": args.scheme, "version_id": args.version_id}),
                )
            }
            "create_version" => {
                let args: CreateVersionArgs = parse_arguments(NAME, "create_version", arguments)?;
                self.create_version(args, key).await
            }
            "fetch_content" => {
                let args: FetchContentArgs = parse_arguments(NAME, "fetch_content", arguments)?;
                self.fetch_content(args).await
            }
            other => Err(Error::permanent(
                "unknown_action",
                format!("canto has no action {other:?}"),
            )),
        }
    }
}

fn action_specs() -> Vec<ActionSpec> {
    let nullable = json!({"type": ["string", "null"]});
    let scheme = json!({"type": "string", "enum": SCHEMES});
    let id = json!({"type": "string", "minLength": 1});
    let non_empty = json!({"type": "string", "minLength": 1});
    let summary_properties = json!({
        "asset_id": string(), "scheme": string(), "name": nullable.clone(),
        "approval": ApprovalState::schema(), "rights": RightsWindow::schema()
    });
    let summary = object(
        &["asset_id", "scheme", "approval", "rights"],
        summary_properties.clone(),
    );
    let mut asset_properties = summary_properties;
    asset_properties["metadata"] = json!({"type": "object"});
    asset_properties["tags"] = array_of(json!({}));
    asset_properties["versions"] = array_of(version_schema());
    asset_properties["approval_status"] = nullable.clone();
    let fetch_content = action(
        "fetch_content",
        "Copy one version of content (the current one unless `version` names another) from Canto into \
         gridflow's content store and report it by digest (SHA-256, size, type, file name) with the \
         asset's rights window; `scheme` is optional (without it each scheme is asked in turn).",
        content::fetch_content_arguments(scheme.clone()),
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
            "search_assets",
            "Search content by keyword (one scheme or all); by default only approved content.",
            object(
                &[],
                json!({"keyword": string(), "scheme": scheme.clone(), "approved_only": {"type": "boolean"},
                "start": {"type": "integer", "minimum": 0}, "limit": {"type": "integer", "minimum": 1, "maximum": 1000}}),
            ),
            object(
                &["assets", "found", "start"],
                json!({"assets": array_of(summary), "found": {"type": "integer"}, "start": {"type": "integer"}}),
            ),
        ),
        action(
            "get_asset",
            "Read content with its metadata, tags, every version (SHA-256 null: Canto gives none), approval state and rights window.",
            object(
                &["scheme", "asset_id"],
                json!({"scheme": scheme.clone(), "asset_id": id.clone()}),
            ),
            object(
                &[
                    "asset_id", "scheme", "approval", "rights", "metadata", "versions",
                ],
                asset_properties,
            ),
        ),
        action(
            "get_download_link",
            "Get the download URL of the original (needs the connector's Bearer token) and the public direct URL when there is one.",
            object(
                &["scheme", "asset_id"],
                json!({"scheme": scheme.clone(), "asset_id": id.clone()}),
            ),
            object(
                &["asset_id", "scheme", "url", "requires_auth"],
                json!({"asset_id": string(), "scheme": string(), "url": string(), "requires_auth": {"type": "boolean"},
                "direct_url": nullable.clone(), "file_name": nullable}),
            ),
        ),
        action(
            "update_metadata",
            "Replace metadata fields (custom fields by default) of one content item.",
            object(
                &["scheme", "asset_id", "fields"],
                json!({"scheme": scheme.clone(), "asset_id": id.clone(),
                "fields": {"type": "object", "minProperties": 1, "additionalProperties": {"type": ["string", "number", "boolean"]}},
                "custom": {"type": "boolean"}}),
            ),
            object(
                &["asset_id", "scheme", "updated"],
                json!({"asset_id": string(), "scheme": string(), "updated": array_of(string())}),
            ),
        ),
        action(
            "comment_version",
            "Leave a comment on a version, for the content team.",
            object(
                &["scheme", "asset_id", "version_id", "comment"],
                json!({"scheme": scheme.clone(), "asset_id": id.clone(), "version_id": string(), "comment": non_empty.clone()}),
            ),
            object(
                &["asset_id", "scheme", "version_id"],
                json!({"asset_id": string(), "scheme": string(), "version_id": string()}),
            ),
        ),
        action(
            "create_version",
            "Upload a file as a new version of content (Canto's S3 upload), wait until Canto has processed it, \
             and optionally comment on the new version for the content team. The file is content_base64 or \
             fetched from source_url (no credentials sent), at most 64 MiB.",
            create_version_arguments(scheme, id, non_empty),
            object(
                &["asset_id", "scheme", "version_id", "file_name", "versions"],
                json!({"asset_id": string(), "scheme": string(), "version_id": string(), "file_name": string(),
                "versions": {"type": "integer", "minimum": 1}, "created": {}, "comment": nullable}),
            ),
        ),
    ]
}

/// One entry of `get_asset`'s `versions`: the digest, size and file name where Canto gives
/// them, `null` where it does not (never guessed).
fn version_schema() -> Value {
    let nullable = |kind: &str| json!({"type": [kind, "null"]});
    json!({"type": "object",
           "required": ["version", "sha256", "size", "file_name", "created_at"],
           "properties": {"version": string(), "sha256": nullable("string"), "size": nullable("integer"),
                          "file_name": nullable("string"), "created_at": nullable("string"),
                          "md5": nullable("string"), "current": {"type": "boolean"}, "comment": nullable("string")}})
}

/// `create_version`'s arguments: closed, with exactly one of `content_base64` and
/// `source_url`.
fn create_version_arguments(scheme: Value, id: Value, non_empty: Value) -> Value {
    let mut arguments = object(
        &["scheme", "asset_id", "file_name"],
        json!({"scheme": scheme, "asset_id": id, "file_name": non_empty.clone(),
        "content_base64": non_empty.clone(), "source_url": {"type": "string", "minLength": 1, "format": "uri"},
        "comment": non_empty}),
    );
    arguments["oneOf"] = json!([{"required": ["content_base64"]}, {"required": ["source_url"]}]);
    arguments
}

#[cfg(test)]
mod tests;
