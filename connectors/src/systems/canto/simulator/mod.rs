//! The Canto simulator (`canto.md`): the OAuth token endpoint (`POST
//! /oauth/api/oauth2/token`, parameters in the query string, camelCase answer) and the
//! tenant API on the same address: search and per-scheme listing (`start`, `limit` →
//! `{results, found, limit, start}`), content by scheme and id with `approvalStatus`,
//! `additional` fields (the rights window) and `versionHistory`, `PUT /api/v1/batch/edit`
//! answered with the text `success`, version comments, an `api_binary` download that needs
//! the Bearer token (every version has real bytes and the content its `md5`, see
//! [`content`], with the test route that replaces a version's bytes), and errors as
//! `{"status":"error","message":…}` \[D\].
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

// Handlers return an early `Response` through `Result` (axum's idiom for a rejection);
// boxing it would buy nothing on a loopback test server.
#![allow(clippy::result_large_err)]

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

use crate::simulator::http::json_object;
use crate::simulator::{
    Change, Routes, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimContext,
    SimError, SimOptions, SimState, idempotency_key,
};

pub mod content;
mod upload;

pub use content::StoredFile;
pub use upload::{MAX_UPLOAD_BYTES, PROCESSING_DELAY, S3_PATH};
use upload::{configure_processing, s3_upload, upload_setting, upload_status};

/// The simulator's name.
pub const NAME: &str = "canto";

pub(super) type Context = State<Arc<SimContext<CantoState>>>;

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
    /// The bytes of every version, by `scheme/id@version` (see [`content`]).
    #[serde(default)]
    pub files: BTreeMap<String, StoredFile>,
}

fn content_key(scheme: &str, id: &str) -> String {
    format!("{scheme}/{id}")
}

impl SimState for CantoState {
    /// The seed data of `seed.json`, next to this file.
    fn seed() -> Self {
        let mut state: Self = serde_json::from_str(include_str!("../seed.json"))
            .expect("seed.json holds valid state");
        content::seed_files(&mut state);
        state
    }
}

/// Starts the Canto simulator (OAuth server and tenant API on one address).
pub async fn start(options: SimOptions) -> Result<RunningSimulator, SimError> {
    crate::simulator::serve(NAME, options, routes(), render_error).await
}

fn routes() -> Routes<CantoState> {
    // The S3 upload is signed by its form's policy, not by a Canto token.
    let public = Router::new()
        .route("/oauth/api/oauth2/token", post(token))
        .route(
            S3_PATH,
            post(s3_upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1024 * 1024)),
        )
        .route("/_sim/canto/webhooks", put(configure_webhooks))
        .route("/_sim/canto/processing", put(configure_processing))
        .route(
            "/_sim/canto/assets/{asset_id}/versions/{version}/content",
            put(content::replace_content),
        );
    let protected = Router::new()
        .route("/api/v1/search", get(search))
        .route("/api/v1/batch/edit", put(batch_edit))
        .route("/api/v1/version/comment", post(version_comment))
        .route("/api/v1/upload/setting", get(upload_setting))
        .route("/api/v1/upload/status", get(upload_status))
        .route("/api/v1/{scheme}", get(list_scheme))
        .route("/api/v1/{scheme}/{id}", get(get_content))
        .route(
            "/api_binary/v1/{scheme}/{id}/download",
            get(content::download),
        );
    Routes {
        public,
        protected,
        authorize,
    }
}

/// Writes an error as `{"status": "error", "message": …}` \[D\].
pub fn render_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "message": message})),
    )
        .into_response()
}

pub(super) fn error_value(status: StatusCode, message: &str) -> (StatusCode, Value) {
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
pub(super) fn now() -> String {
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

async fn search(State(context): Context, Query(query): Query<HashMap<String, String>>) -> Response {
    listing(&context, None, &query)
}

async fn list_scheme(
    State(context): Context,
    Path(scheme): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
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
    Path((scheme, id)): Path<(String, String)>,
) -> Response {
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
fn text_reply(reply: crate::simulator::Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        (status, "success").into_response()
    } else {
        (status, axum::Json(reply.body)).into_response()
    }
}

async fn batch_edit(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
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
pub(super) fn emit(context: &SimContext<CantoState>, event: &str, key: &str) {
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
    crate::simulator::reply(reply)
}

async fn version_comment(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
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

// ---------------------------------------------------------------------------------------
// Uploads: the S3 form, the simulated bucket, processing and the upload status.
