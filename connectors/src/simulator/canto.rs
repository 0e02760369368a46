//! The Canto simulator (`canto.md`): the OAuth token endpoint (`POST
//! /oauth/api/oauth2/token`, parameters in the query string, camelCase answer) and the
//! tenant API on the same address: search and per-scheme listing (`start`, `limit` →
//! `{results, found, limit, start}`), content by scheme and id with `approvalStatus`,
//! `additional` fields (the rights window) and `versionHistory`, `PUT /api/v1/batch/edit`
//! answered with the text `success`, version comments, an `api_binary` download that needs
//! the Bearer token, and errors as `{"status":"error","message":…}` \[D\].
//!
//! Uploads follow Canto's flow (`canto.md` #8): `GET /api/v1/upload/setting` answers an S3
//! POST form (`url`, `key`, `acl`, `AWSAccessKeyId`, `Policy`, `Signature`, empty
//! `x-amz-meta-*` defaults) whose `url` is a simulated bucket on the simulator's own address,
//! [`S3_PATH`] \[D\]. That route takes no Canto token; it checks the form as S3 checks a
//! browser POST (known key id, the signature of the policy, the policy unexpired, every
//! condition met, no field the policy does not cover, the file last and within
//! `content-length-range`) and answers S3's XML `<Error><Code>…</Code><Message>…</Message>`
//! on failure, 204 (or 201 and a `PostResponse` with `success_action_status=201`) on
//! success. An accepted upload is one `upload.received` effect, deduplicated on the
//! request's idempotency key. [`PROCESSING_DELAY`] later (and on every status query) it is
//! processed: with `x-amz-meta-refer_id` naming content, a new current entry is appended to
//! its `versionHistory` (`version.created`) and `Add New Version` fires; otherwise it ends
//! `Error` \[D\]. `GET /api/v1/upload/status?hours=1..24` lists the uploads as `{found,
//! results: [{name, time, status, scheme, id}]}`, status `Initial`, `Done` or `Error`.
//! `PUT /_sim/canto/processing` (`{"paused": bool}`) holds uploads `Initial` for tests.
//!
//! Webhooks are configured in Canto's admin UI, for which `PUT /_sim/canto/webhooks`
//! (`[{event, url, secure_token}]`, no auth, loopback) stands in \[D\]. `Update Metadata`
//! fires on a batch edit, once per content item, and `Add New Version` when an upload
//! becomes a version, with the body `{secure_token, scheme, id, album, displayname}` and
//! no event name \[V\].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::json_object;
use super::{
    Change, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimContext, SimError,
    SimOptions, SimState, idempotency_key,
};

/// The simulator's name.
pub const NAME: &str = "canto";

type Context = State<Arc<SimContext<CantoState>>>;

/// Everything the Canto simulator holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CantoState {
    /// Content by `scheme/id`.
    pub contents: BTreeMap<String, Value>,
    /// Webhooks as configured in Canto's admin UI: `{event, url, secure_token}`.
    #[serde(default)]
    pub webhooks: Vec<Value>,
    /// Files posted to the simulated S3 bucket, oldest first: `{key, name, scheme, id,
    /// refer_id, size, status, time, received_at}`, `status` going from `Initial` to `Done`
    /// (or `Error`) when processed.
    #[serde(default)]
    pub uploads: Vec<Value>,
    /// While true, uploads stay `Initial` (`PUT /_sim/canto/processing`).
    #[serde(default)]
    pub processing_paused: bool,
}

fn content_key(scheme: &str, id: &str) -> String {
    format!("{scheme}/{id}")
}

impl SimState for CantoState {
    fn seed() -> Self {
        let content = |scheme: &str,
                       id: &str,
                       name: &str,
                       approval: &str,
                       additional: Value,
                       tags: &[&str]| {
            let versions = json!([{"no": "1", "version": "1", "currentVersion": true, "comment": "initial upload",
                "created": "20260110091500000", "time": "20260110091500000", "ownerName": "Dana Brooks",
                "uri": {"preview": format!("/api_binary/v1/{scheme}/{id}/preview"),
                        "download": format!("/api_binary/v1/{scheme}/{id}/download")}}]);
            (
                content_key(scheme, id),
                json!({
                    "id": id, "name": name, "scheme": scheme, "owner": "u-dbrooks", "ownerName": "Dana Brooks",
                    "size": "2483341", "width": "3000", "height": "2000", "dpi": "300",
                    "time": "20260110091500000", "created": "20260110091500000", "lastUploaded": "20260110091500000",
                    "approvalStatus": approval, "tag": tags, "keyword": [], "smartTags": [],
                    "default": {"Name": name, "Copyright": "Aurora Beverage Co.", "Author": "Dana Brooks",
                                "Date uploaded": "20260110091500000", "Date modified": "20260110091500000"},
                    "additional": additional,
                    "relatedAlbums": [{"id": "alb-launch-2026", "name": "Launch kits 2026", "namePath": "Marketing/Launch kits 2026"}],
                    "url": {"preview": format!("/api_binary/v1/{scheme}/{id}/preview"),
                            "download": format!("/api_binary/v1/{scheme}/{id}/download"),
                            "detail": format!("/api/v1/{scheme}/{id}"),
                            "directUrlOriginal": format!("/direct/{scheme}/{id}/original")},
                    "versionHistory": versions,
                }),
            )
        };
        let contents = BTreeMap::from([
            content(
                "image",
                "hl26cs0001",
                "citrus-spritz-can-12oz.png",
                "Approved",
                json!({"Brand": "Aurora Springs", "Product": "Citrus Spritz 12oz", "Region": "US-Northeast",
                       "Language": "en-US", "Usage Start": "2026-04-01", "Usage Expiry": "2027-03-31"}),
                &["citrus", "summer"],
            ),
            content(
                "image",
                "hl24st0002",
                "holiday-2024-shelf-talker.png",
                "Approved",
                json!({"Brand": "Aurora Springs", "Product": "Winter Berry 750ml", "Region": "US",
                       "Language": "en-US", "Usage Start": "2024-11-01", "Usage Expiry": "2025-01-15"}),
                &["holiday", "winter"],
            ),
            content(
                "video",
                "cs26vd0003",
                "citrus-spritz-15s-spot.mp4",
                "Pending",
                json!({"Brand": "Aurora Springs", "Product": "Citrus Spritz 12oz", "Region": "US",
                       "Language": "en-US", "Usage Start": "2026-05-01"}),
                &["citrus", "tv"],
            ),
            content(
                "document",
                "nb26pd0004",
                "cold-brew-sell-sheet-de.pdf",
                "Restricted",
                json!({"Brand": "Northbound Coffee", "Product": "Cold Brew 330ml", "Region": "DE",
                       "Language": "de-DE", "Usage Start": "2026-01-01", "Usage Expiry": "2026-12-31",
                       "Usage Terms": "print only"}),
                &["cold brew"],
            ),
            content(
                "image",
                "nb26ps0005",
                "cold-brew-packshot.jpg",
                "",
                json!({"Brand": "Northbound Coffee", "Product": "Cold Brew 330ml"}),
                &["cold brew"],
            ),
        ]);
        Self {
            contents,
            webhooks: Vec::new(),
            uploads: Vec::new(),
            processing_paused: false,
        }
    }
}

/// Starts the Canto simulator (OAuth server and tenant API on one address).
pub async fn start(options: SimOptions) -> Result<RunningSimulator, SimError> {
    super::serve(NAME, options, routes(), render_error).await
}

fn routes() -> Router<Arc<SimContext<CantoState>>> {
    Router::new()
        .route("/oauth/api/oauth2/token", post(token))
        .route("/api/v1/search", get(search))
        .route("/api/v1/batch/edit", put(batch_edit))
        .route("/api/v1/version/comment", post(version_comment))
        .route("/api/v1/upload/setting", get(upload_setting))
        .route("/api/v1/upload/status", get(upload_status))
        .route(
            S3_PATH,
            post(s3_upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1024 * 1024)),
        )
        .route("/api/v1/{scheme}", get(list_scheme))
        .route("/api/v1/{scheme}/{id}", get(get_content))
        .route("/api_binary/v1/{scheme}/{id}/download", get(download))
        .route("/_sim/canto/webhooks", put(configure_webhooks))
        .route("/_sim/canto/processing", put(configure_processing))
}

/// Writes an error as `{"status": "error", "message": …}` \[D\].
pub fn render_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "message": message})),
    )
        .into_response()
}

fn error_value(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (status, json!({"status": "error", "message": message}))
}

fn authorize(context: &SimContext<CantoState>, headers: &HeaderMap) -> Result<(), Response> {
    if context.tokens.check_bearer(headers) {
        Ok(())
    } else {
        Err(render_error(
            StatusCode::UNAUTHORIZED,
            "access token missing, invalid or expired",
        ))
    }
}

/// Now in Canto's `yyyyMMddHHmmssSSS`.
fn now() -> String {
    chrono::Utc::now().format("%Y%m%d%H%M%S%3f").to_string()
}

async fn token(State(context): Context, Query(query): Query<HashMap<String, String>>) -> Response {
    if query.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"})),
        )
            .into_response();
    }
    if query.get("app_id").map(String::as_str) != Some(SANDBOX_CLIENT_ID)
        || query.get("app_secret").map(String::as_str) != Some(SANDBOX_CLIENT_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client", "error_description": "unknown app_id or wrong app_secret"})),
        )
            .into_response();
    }
    let token = context.tokens.issue();
    axum::Json(json!({"accessToken": token, "tokenType": "bearer", "expiresIn": "2592000", "refreshToken": null}))
        .into_response()
}

fn listing(
    context: &SimContext<CantoState>,
    scheme: Option<&str>,
    query: &HashMap<String, String>,
) -> Response {
    let number = |name: &str, default: usize| match query.get(name) {
        Some(text) => text.parse::<usize>().map_err(|_| {
            render_error(StatusCode::BAD_REQUEST, &format!("{name} must be a number"))
        }),
        None => Ok(default),
    };
    let (start, limit) = match (number("start", 0), number("limit", 100)) {
        (Ok(start), Ok(limit)) if (1..=1000).contains(&limit) => (start, limit),
        (Err(response), _) | (_, Err(response)) => return response,
        _ => return render_error(StatusCode::BAD_REQUEST, "limit must be 1..1000"),
    };
    let keyword = query
        .get("keyword")
        .map(|keyword| keyword.to_lowercase())
        .unwrap_or_default();
    let approval = query.get("approval").map(|a| a.to_lowercase());
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let matching: Vec<Value> = context.store.read(|state| {
        state
            .contents
            .values()
            .filter(|content| scheme.is_none_or(|scheme| content["scheme"] == scheme))
            .filter(|content| {
                keyword.is_empty()
                    || content["name"]
                        .as_str()
                        .is_some_and(|name| name.to_lowercase().contains(&keyword))
                    || content["tag"].as_array().is_some_and(|tags| {
                        tags.iter()
                            .any(|tag| tag.as_str().is_some_and(|t| t.contains(&keyword)))
                    })
            })
            .filter(|content| match approval.as_deref() {
                None => true,
                Some("expired") => content["additional"]["Usage Expiry"]
                    .as_str()
                    .is_some_and(|until| until < today.as_str()),
                Some(wanted) => content["approvalStatus"]
                    .as_str()
                    .is_some_and(|status| status.to_lowercase() == wanted),
            })
            .cloned()
            .collect()
    });
    let found = matching.len();
    let results: Vec<Value> = matching.into_iter().skip(start).take(limit).collect();
    axum::Json(json!({"results": results, "found": found, "limit": limit, "start": start,
                      "sortBy": "time", "sortDirection": "descending", "facets": [], "matchExpr": ""}))
    .into_response()
}

async fn search(
    State(context): Context,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = authorize(&context, &headers) {
        return response;
    }
    listing(&context, None, &query)
}

async fn list_scheme(
    State(context): Context,
    headers: HeaderMap,
    Path(scheme): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = authorize(&context, &headers) {
        return response;
    }
    if ![
        "image",
        "video",
        "audio",
        "document",
        "presentation",
        "other",
    ]
    .contains(&scheme.as_str())
    {
        return render_error(StatusCode::NOT_FOUND, &format!("no scheme {scheme}"));
    }
    listing(&context, Some(&scheme), &query)
}

fn content_not_found(scheme: &str, id: &str) -> (StatusCode, Value) {
    error_value(
        StatusCode::NOT_FOUND,
        &format!("content {scheme}/{id} not found"),
    )
}

async fn get_content(
    State(context): Context,
    headers: HeaderMap,
    Path((scheme, id)): Path<(String, String)>,
) -> Response {
    if let Err(response) = authorize(&context, &headers) {
        return response;
    }
    match context
        .store
        .read(|state| state.contents.get(&content_key(&scheme, &id)).cloned())
    {
        Some(content) => axum::Json(content).into_response(),
        None => {
            let (status, body) = content_not_found(&scheme, &id);
            (status, axum::Json(body)).into_response()
        }
    }
}

/// A stored reply as Canto answers writes: the text `success`, or the JSON error.
fn text_reply(reply: super::Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        (status, "success").into_response()
    } else {
        (status, axum::Json(reply.body)).into_response()
    }
}

async fn batch_edit(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorize(&context, &headers) {
        return response;
    }
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let (Some(contents), Some(properties)) = (
        body["contents"].as_array().cloned(),
        body["properties"].as_array().cloned(),
    ) else {
        return render_error(
            StatusCode::BAD_REQUEST,
            "contents and properties must be lists",
        );
    };
    if properties
        .iter()
        .any(|property| property["propertyId"].as_str().is_none_or(str::is_empty))
    {
        return render_error(StatusCode::BAD_REQUEST, "every property needs a propertyId");
    }
    let change = Change::new(
        "metadata.updated",
        "PUT",
        "/api/v1/batch/edit",
        idempotency_key(&headers),
    );
    let reply = context.store.change(change, |state| {
        let keys: Vec<String> = contents
            .iter()
            .map(|content| {
                content_key(
                    content["scheme"].as_str().unwrap_or(""),
                    content["id"].as_str().unwrap_or(""),
                )
            })
            .collect();
        if let Some(missing) = keys.iter().find(|key| !state.contents.contains_key(*key)) {
            return Err(error_value(
                StatusCode::NOT_FOUND,
                &format!("content {missing} not found"),
            ));
        }
        let at = now();
        for key in &keys {
            if let Some(content) = state.contents.get_mut(key) {
                for property in &properties {
                    let part = if property["customField"] == false {
                        "default"
                    } else {
                        "additional"
                    };
                    let name = property["propertyId"].as_str().unwrap_or("");
                    content[part][name] = property["propertyValue"].clone();
                }
                content["time"] = json!(at);
            }
        }
        Ok((StatusCode::OK, json!("success"), keys.first().cloned()))
    });
    if !reply.replayed && reply.status == 200 {
        for content in &contents {
            let key = content_key(
                content["scheme"].as_str().unwrap_or(""),
                content["id"].as_str().unwrap_or(""),
            );
            emit(&context, "Update Metadata", &key);
        }
    }
    text_reply(reply)
}

/// POSTs Canto's webhook body for the content `key` to every webhook of `event`.
fn emit(context: &SimContext<CantoState>, event: &str, key: &str) {
    let (hooks, content) = context.store.read(|state| {
        let hooks: Vec<Value> = state
            .webhooks
            .iter()
            .filter(|hook| hook["event"] == event)
            .cloned()
            .collect();
        (hooks, state.contents.get(key).cloned())
    });
    let Some(content) = content else {
        return;
    };
    for hook in hooks {
        let Some(url) = hook["url"].as_str().map(str::to_owned) else {
            continue;
        };
        let body = json!({
            "secure_token": hook["secure_token"].clone(), "scheme": content["scheme"].clone(),
            "id": content["id"].clone(), "album": content["relatedAlbums"][0]["id"].clone(),
            "displayname": content["name"].clone(),
        });
        tokio::spawn(async move {
            if let Err(error) = reqwest::Client::new().post(url).json(&body).send().await {
                tracing::warn!(error = %error, "canto simulator: webhook delivery failed");
            }
        });
    }
}

/// Stands in for the admin UI: replaces the webhook configuration.
async fn configure_webhooks(State(context): Context, body: Bytes) -> Response {
    let hooks = match serde_json::from_slice::<Vec<Value>>(&body) {
        Ok(hooks)
            if hooks.iter().all(|hook| {
                ["event", "url", "secure_token"]
                    .iter()
                    .all(|field| hook[*field].is_string())
            }) =>
        {
            hooks
        }
        _ => {
            return render_error(
                StatusCode::BAD_REQUEST,
                "body must be a list of {event, url, secure_token}",
            );
        }
    };
    let change = Change::new("webhooks.configured", "PUT", "/_sim/canto/webhooks", None);
    let reply = context.store.change(change, |state| {
        state.webhooks = hooks.clone();
        Ok((StatusCode::OK, json!({"webhooks": hooks.len()}), None))
    });
    super::reply(reply)
}

async fn version_comment(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorize(&context, &headers) {
        return response;
    }
    let body = match json_object(&body, render_error) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let (Some(scheme), Some(id), Some(version), Some(comment)) = (
        body["scheme"].as_str().map(str::to_owned),
        body["id"].as_str().map(str::to_owned),
        body["versionId"].as_str().map(str::to_owned),
        body["comment"].as_str().map(str::to_owned),
    ) else {
        return render_error(
            StatusCode::BAD_REQUEST,
            "scheme, id, versionId and comment are required",
        );
    };
    let change = Change::new(
        "version.commented",
        "POST",
        "/api/v1/version/comment",
        idempotency_key(&headers),
    );
    text_reply(context.store.change(change, |state| {
        let key = content_key(&scheme, &id);
        let content = state
            .contents
            .get_mut(&key)
            .ok_or_else(|| content_not_found(&scheme, &id))?;
        let entry = content["versionHistory"]
            .as_array_mut()
            .and_then(|versions| {
                versions
                    .iter_mut()
                    .find(|v| v["version"] == version.as_str())
            })
            .ok_or_else(|| {
                error_value(
                    StatusCode::NOT_FOUND,
                    &format!("content {key} has no version {version}"),
                )
            })?;
        entry["comment"] = json!(comment);
        Ok((StatusCode::OK, json!("success"), Some(key)))
    }))
}

async fn download(
    State(context): Context,
    headers: HeaderMap,
    Path((scheme, id)): Path<(String, String)>,
) -> Response {
    if let Err(response) = authorize(&context, &headers) {
        return response;
    }
    match context
        .store
        .read(|state| state.contents.get(&content_key(&scheme, &id)).cloned())
    {
        Some(content) => (
            StatusCode::OK,
            format!(
                "sandbox bytes of {}",
                content["name"].as_str().unwrap_or("?")
            ),
        )
            .into_response(),
        None => {
            let (status, body) = content_not_found(&scheme, &id);
            (status, axum::Json(body)).into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Uploads: the S3 form, the simulated bucket, processing and the upload status.

/// The simulated S3 bucket, served on the simulator's own address \[D\].
pub const S3_PATH: &str = "/_s3/canto-uploads";

/// The bucket's name, as S3 policies name it.
const BUCKET: &str = "canto-uploads";

/// The access key id every upload form carries \[D\].
const ACCESS_KEY_ID: &str = "AKIASIMULATEDCANTO01";

/// What the simulator signs upload policies with \[D\]; never leaves the simulator.
const SIGNING_SECRET: &str = "canto-simulator-upload-signing-secret";

/// The largest file the simulated bucket takes (the policy's `content-length-range`).
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// How long after its upload a file is processed into a new version \[D\].
pub const PROCESSING_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// How long an upload form stays valid (Canto: 5 hours \[V\]).
const FORM_VALIDITY_HOURS: i64 = 5;

/// The `x-amz-meta-*` fields the form allows, each with any value.
const META_FIELDS: [&str; 6] = ["scheme", "album_id", "tag", "id", "file_name", "refer_id"];

/// The signature of a base64 policy: base64 of SHA-256 over the secret and the policy \[D\]
/// (S3's is an HMAC; the connector only echoes it).
fn sign(policy: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(SIGNING_SECRET.as_bytes())
        .chain_update(policy.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// `GET /api/v1/upload/setting`: a fresh S3 POST form whose `url` is the simulated bucket
/// on the address the request came to, with a policy and signature to echo back.
async fn upload_setting(State(context): Context, headers: HeaderMap) -> Response {
    use base64::Engine as _;
    if let Err(response) = authorize(&context, &headers) {
        return response;
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    let folder: String = rand::random::<[u8; 8]>()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let prefix = format!("{folder}/");
    let expiration = (chrono::Utc::now() + chrono::Duration::hours(FORM_VALIDITY_HOURS))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut conditions = vec![
        json!({"bucket": BUCKET}),
        json!(["starts-with", "$key", prefix]),
        json!({"acl": "private"}),
        json!(["starts-with", "$success_action_status", ""]),
        json!(["content-length-range", 1, MAX_UPLOAD_BYTES]),
    ];
    conditions.extend(
        META_FIELDS
            .iter()
            .map(|field| json!(["starts-with", format!("$x-amz-meta-{field}"), ""])),
    );
    let policy = base64::engine::general_purpose::STANDARD
        .encode(json!({"expiration": expiration, "conditions": conditions}).to_string());
    let signature = sign(&policy);
    axum::Json(json!({
        "url": format!("http://{host}{S3_PATH}"), "key": format!("{prefix}${{filename}}"),
        "acl": "private", "AWSAccessKeyId": ACCESS_KEY_ID, "Policy": policy, "Signature": signature,
        "x-amz-meta-scheme": "", "x-amz-meta-album_id": "", "x-amz-meta-tag": "",
        "x-amz-meta-id": "", "x-amz-meta-file_name": "",
    }))
    .into_response()
}

/// An S3 error: status, `Code` and `Message`.
struct S3Error {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl S3Error {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn policy(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!("Invalid according to Policy: {message}"),
        )
    }
}

/// Escapes text for an XML element.
fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// S3's error document: `<Error><Code>…</Code><Message>…</Message></Error>`.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>\
         <RequestId>SIMULATED</RequestId></Error>",
        xml_text(code),
        xml_text(message)
    );
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

/// The form fields (names compared case-insensitively, as S3 does) and the file.
struct PostedForm {
    fields: Vec<(String, String)>,
    file_name: Option<String>,
    file: Option<Bytes>,
}

impl PostedForm {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn meta(&self, name: &str) -> String {
        self.get(&format!("x-amz-meta-{name}"))
            .unwrap_or_default()
            .to_owned()
    }
}

/// Reads the multipart body; like S3, fields after the file are ignored.
async fn read_form(mut multipart: axum::extract::Multipart) -> Result<PostedForm, S3Error> {
    let malformed = |_| {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "MalformedPOSTRequest",
            "The body of your POST request is not well-formed multipart/form-data.",
        )
    };
    let mut form = PostedForm {
        fields: Vec::new(),
        file_name: None,
        file: None,
    };
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name.eq_ignore_ascii_case("file") {
            form.file_name = field.file_name().map(str::to_owned);
            form.file = Some(field.bytes().await.map_err(malformed)?);
            break;
        }
        let value = field.text().await.map_err(malformed)?;
        form.fields.push((name, value));
    }
    Ok(form)
}

/// Checks the form as S3 checks a browser POST: the access key, the policy's signature and
/// expiry, that every condition holds, and that every field is covered by a condition.
fn check_policy(form: &PostedForm, size: usize) -> Result<(), S3Error> {
    use base64::Engine as _;
    let required = |name: &str| {
        form.get(name).ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                format!(
                    "Bucket POST must contain a field named '{name}'.  If it is specified, \
                     please check the order of the fields."
                ),
            )
        })
    };
    let key_id = required("AWSAccessKeyId")?;
    let policy = required("Policy")?;
    let signature = required("Signature")?;
    required("key")?;
    if key_id != ACCESS_KEY_ID {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    }
    if signature != sign(policy) {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method.",
        ));
    }
    let document = base64::engine::general_purpose::STANDARD
        .decode(policy)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidPolicyDocument",
                "Invalid Policy: Invalid JSON.",
            )
        })?;
    let expired = document["expiration"]
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .is_none_or(|expiration| expiration < chrono::Utc::now());
    if expired {
        return Err(S3Error::policy("Policy expired."));
    }
    let conditions = document["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut covered = vec![
        "awsaccesskeyid".to_owned(),
        "policy".to_owned(),
        "signature".to_owned(),
    ];
    for condition in &conditions {
        let failed = || S3Error::policy(format!("Policy Condition failed: {condition}"));
        if let Some(exact) = condition.as_object() {
            for (name, wanted) in exact {
                if name == "bucket" {
                    continue;
                }
                covered.push(name.to_ascii_lowercase());
                if form.get(name) != wanted.as_str() {
                    return Err(failed());
                }
            }
        } else if let Some([kind, low, high]) = condition.as_array().map(Vec::as_slice)
            && kind == "content-length-range"
        {
            let within = low.as_u64().is_some_and(|low| size as u64 >= low)
                && high.as_u64().is_some_and(|high| size as u64 <= high);
            if !within {
                return Err(S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "EntityTooLarge",
                    "Your proposed upload exceeds the maximum allowed size",
                ));
            }
        } else if let Some([operator, field, value]) = condition.as_array().map(Vec::as_slice) {
            let name = field.as_str().unwrap_or_default().trim_start_matches('$');
            covered.push(name.to_ascii_lowercase());
            let value = value.as_str().unwrap_or_default();
            let holds = match (operator.as_str(), form.get(name)) {
                // A starts-with condition with an empty prefix allows the field to be absent.
                (Some("starts-with"), None) => value.is_empty(),
                (Some("starts-with"), Some(given)) => given.starts_with(value),
                (Some("eq"), given) => given == Some(value),
                _ => false,
            };
            if !holds {
                return Err(failed());
            }
        }
    }
    let extra: Vec<&str> = form
        .fields
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            let lower = name.to_ascii_lowercase();
            !lower.starts_with("x-ignore-") && !covered.contains(&lower)
        })
        .collect();
    if !extra.is_empty() {
        return Err(S3Error::policy(format!(
            "Extra input fields: {}",
            extra.join(", ")
        )));
    }
    Ok(())
}

/// The simulated S3 bucket: a browser-style POST of the upload form and the file. A valid
/// upload is recorded (deduplicated on the request's idempotency key) and answered as S3
/// does, 204 without a body or, with `success_action_status=201`, 201 and an XML
/// `PostResponse`; processing into a new version follows after [`PROCESSING_DELAY`].
async fn s3_upload(
    State(context): Context,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let Ok(multipart) = multipart else {
        return s3_error(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "Bucket POST must be of the enclosure-type multipart/form-data",
        );
    };
    let form = match read_form(multipart).await {
        Ok(form) => form,
        Err(error) => return s3_error(error.status, error.code, &error.message),
    };
    let Some(file) = &form.file else {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "POST requires exactly one file upload per request.",
        );
    };
    if let Err(error) = check_policy(&form, file.len()) {
        return s3_error(error.status, error.code, &error.message);
    }
    let part_name = form.file_name.clone().unwrap_or_default();
    let key = form
        .get("key")
        .unwrap_or_default()
        .replace("${filename}", &part_name);
    let name = [form.meta("file_name"), part_name]
        .into_iter()
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| key.rsplit('/').next().unwrap_or_default().to_owned());
    let created = form.get("success_action_status") == Some("201");
    let upload = json!({
        "key": key, "name": name, "scheme": form.meta("scheme"), "id": form.meta("id"),
        "refer_id": form.meta("refer_id"), "size": file.len(), "status": "Initial", "time": now(),
        "received_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    let change = Change::new(
        "upload.received",
        "POST",
        S3_PATH,
        idempotency_key(&headers),
    );
    let reply = context.store.change(change, |state| {
        state.uploads.push(upload);
        let (status, body) = if created {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("127.0.0.1");
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>http://{}{S3_PATH}/{}</Location>\
                 <Bucket>{BUCKET}</Bucket><Key>{}</Key><ETag>\"simulated\"</ETag></PostResponse>",
                xml_text(host),
                xml_text(&key),
                xml_text(&key)
            );
            (StatusCode::CREATED, json!(xml))
        } else {
            (StatusCode::NO_CONTENT, Value::Null)
        };
        Ok((status, body, Some(key.clone())))
    });
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !status.is_success() {
        let message = reply.body["message"].as_str().unwrap_or("request refused");
        return s3_error(status, "InvalidRequest", message);
    }
    if !reply.replayed {
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            tokio::time::sleep(PROCESSING_DELAY).await;
            process_due(&context);
        });
    }
    match reply.body.as_str() {
        Some(xml) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/xml")],
            xml.to_owned(),
        )
            .into_response(),
        None => status.into_response(),
    }
}

/// Processes every upload that has waited [`PROCESSING_DELAY`], unless processing is
/// paused. Runs after each upload and on every status query (which also covers uploads
/// left `Initial` by a restart); an upload already processed is left alone.
fn process_due(context: &SimContext<CantoState>) {
    let now = chrono::Utc::now();
    let delay = chrono::Duration::from_std(PROCESSING_DELAY).unwrap_or_default();
    let due: Vec<String> = context.store.read(|state| {
        if state.processing_paused {
            return Vec::new();
        }
        state
            .uploads
            .iter()
            .filter(|upload| upload["status"] == "Initial")
            .filter(|upload| {
                upload["received_at"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_none_or(|at| at + delay <= now)
            })
            .filter_map(|upload| upload["key"].as_str().map(str::to_owned))
            .collect()
    });
    for key in due {
        process(context, &key);
    }
}

/// Turns one upload into a new version of the content its `x-amz-meta-refer_id` names, or
/// marks it `Error` when there is no such content (only new versions are simulated \[D\]).
fn process(context: &SimContext<CantoState>, key: &str) {
    let target = context.store.read(|state| {
        let upload = state.uploads.iter().find(|upload| upload["key"] == key)?;
        let scheme = upload["scheme"].as_str().unwrap_or_default();
        let refer = upload["refer_id"].as_str().unwrap_or_default();
        if refer.is_empty() {
            return Some(None);
        }
        let found = state
            .contents
            .iter()
            .find(|(_, content)| {
                content["id"] == refer && (scheme.is_empty() || content["scheme"] == scheme)
            })
            .map(|(content, _)| content.clone());
        Some(found)
    });
    let Some(target) = target else {
        return;
    };
    let action = if target.is_some() {
        "version.created"
    } else {
        "upload.failed"
    };
    let change = Change::new(action, "POST", S3_PATH, None);
    let reply = context.store.change(change, |state| {
        let upload = state
            .uploads
            .iter_mut()
            .find(|upload| upload["key"] == key && upload["status"] == "Initial")
            .ok_or_else(|| error_value(StatusCode::CONFLICT, "already processed"))?;
        let at = now();
        let Some(content_key) = &target else {
            upload["status"] = json!("Error");
            return Ok((
                StatusCode::OK,
                json!({"status": "Error"}),
                Some(key.to_owned()),
            ));
        };
        upload["status"] = json!("Done");
        let size = upload["size"].clone();
        let content = state
            .contents
            .get_mut(content_key)
            .ok_or_else(|| error_value(StatusCode::CONFLICT, "content gone"))?;
        let (scheme, id) = (content["scheme"].clone(), content["id"].clone());
        let versions = content["versionHistory"]
            .as_array_mut()
            .ok_or_else(|| error_value(StatusCode::CONFLICT, "no version history"))?;
        let next = versions
            .iter()
            .filter_map(|version| version["version"].as_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        for version in versions.iter_mut() {
            version["currentVersion"] = json!(false);
        }
        let (scheme, id) = (scheme.as_str().unwrap_or(""), id.as_str().unwrap_or(""));
        versions.push(json!({
            "no": next.to_string(), "version": next.to_string(), "currentVersion": true,
            "comment": "", "created": at, "time": at, "ownerName": "Sandbox Integration",
            "uri": {"preview": format!("/api_binary/v1/{scheme}/{id}/preview"),
                    "download": format!("/api_binary/v1/{scheme}/{id}/download")},
        }));
        content["time"] = json!(at);
        content["lastUploaded"] = json!(at);
        content["size"] = json!(size.to_string());
        content["default"]["Date modified"] = json!(at);
        Ok((
            StatusCode::OK,
            json!({"version": next.to_string()}),
            Some(content_key.clone()),
        ))
    });
    if let (Some(content_key), 200) = (&target, reply.status) {
        emit(context, "Add New Version", content_key);
    }
}

/// `GET /api/v1/upload/status?hours=1..24`: the uploads of the last hours, newest first, as
/// `{found, results: [{name, time, status, scheme, id}]}`.
async fn upload_status(
    State(context): Context,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = authorize(&context, &headers) {
        return response;
    }
    let hours = match query.get("hours").map(|text| text.parse::<i64>()) {
        None => 1,
        Some(Ok(hours)) if (1..=24).contains(&hours) => hours,
        Some(_) => return render_error(StatusCode::BAD_REQUEST, "hours must be 1..24"),
    };
    process_due(&context);
    let since = chrono::Utc::now() - chrono::Duration::hours(hours);
    let results: Vec<Value> = context.store.read(|state| {
        state
            .uploads
            .iter()
            .rev()
            .filter(|upload| {
                upload["received_at"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_some_and(|at| at >= since)
            })
            .map(|upload| {
                json!({"name": upload["name"], "time": upload["time"], "status": upload["status"],
                       "scheme": upload["scheme"], "id": upload["id"]})
            })
            .collect()
    });
    axum::Json(json!({"found": results.len(), "results": results})).into_response()
}

/// Pauses or resumes processing (`{"paused": bool}`), so a test can keep an upload
/// `Initial`; resuming processes what is due.
async fn configure_processing(State(context): Context, body: Bytes) -> Response {
    let paused = match json_object(&body, render_error) {
        Ok(body) => match body["paused"].as_bool() {
            Some(paused) => paused,
            None => return render_error(StatusCode::BAD_REQUEST, "paused must be a boolean"),
        },
        Err(response) => return response,
    };
    let change = Change::new(
        "processing.configured",
        "PUT",
        "/_sim/canto/processing",
        None,
    );
    let reply = context.store.change(change, |state| {
        state.processing_paused = paused;
        Ok((StatusCode::OK, json!({"paused": paused}), None))
    });
    if !paused {
        process_due(&context);
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            tokio::time::sleep(PROCESSING_DELAY).await;
            process_due(&context);
        });
    }
    super::reply(reply)
}
