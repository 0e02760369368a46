//! The iconik simulator (`iconik.md`): `App-ID` + `Auth-Token` on every request (401
//! `{"errors":["Token is invalid"]}` otherwise), a login that issues tokens
//! (`POST /auth/v1/auth/simple/login/` \[I\]), trailing-slash paths, page paging
//! (`{objects, page, pages, per_page, total, *_url}`), assets with versions, approvals per
//! asset, metadata values per view, files with signed download URLs, new versions
//! (`IN_PROGRESS`) and errors as `{"errors": [...]}`.
//!
//! Webhooks: definitions are kept under `/notifications/v1/webhooks/`; every change to an
//! asset (realms `metadata`, `versions`, `approvals` \[I\]: the real realm names are
//! unpublished) is POSTed to each `ENABLED` definition whose `event_type` is `assets` and
//! whose `realm` and `operation`, when set, match, as the envelope of `iconik.md`, with the
//! definition's custom `headers`. Deliveries are fire-and-forget; failing definitions are
//! not switched to `FAILING`.
//!
//! Every file has real bytes, with their SHA-256 as `checksum`, served through signed
//! storage links, and a test-only route replaces them ([`content`]).

// Handlers return an early `Response` through `Result` (axum's idiom for a rejection);
// boxing it would buy nothing on a loopback test server.
#![allow(clippy::result_large_err)]

pub mod content;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::simulator::http::{json_object, not_found, now_rfc3339, respond};
use crate::simulator::{
    Change, Routes, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME,
    SimContext, SimError, SimOptions, SimState, idempotency_key, reply,
};

/// The simulator's name.
pub const NAME: &str = "iconik";

/// The API root under the simulator's address, as `https://app.iconik.io/API`.
pub const API_ROOT: &str = "/API";

/// The metadata view that holds brand, product, region, language and rights fields.
pub const SANDBOX_VIEW_ID: &str = "7c1e5a90-3b2d-4f61-9a8e-0d4c2b1a6f01";

type Context = State<Arc<SimContext<IconikState>>>;

/// Everything the iconik simulator holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IconikState {
    /// Assets by id (the `AssetSchema` document, versions included).
    pub assets: BTreeMap<String, Value>,
    /// The approval request of each asset (`ApprovalSchema`), by asset id.
    pub approvals: BTreeMap<String, Value>,
    /// Metadata values by asset id, then view id (`MetadataValuesSchema`).
    pub metadata: BTreeMap<String, BTreeMap<String, Value>>,
    /// Files by asset id.
    pub files: BTreeMap<String, Vec<Value>>,
    /// Webhook definitions by id (`WebhookCreateSchema` plus `id`).
    #[serde(default)]
    pub webhooks: BTreeMap<String, Value>,
    /// The bytes of each file, by file id ([`content`]).
    #[serde(default)]
    pub contents: BTreeMap<String, content::StoredContent>,
    /// The last number used in generated ids.
    pub next_id: u64,
}

impl IconikState {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("00000000-0000-4000-8000-{:012}", self.next_id)
    }
}

impl SimState for IconikState {
    /// The seed data of `seed.json`, next to this file, each file with its sandbox bytes.
    fn seed() -> Self {
        let mut state: Self =
            serde_json::from_str(include_str!("seed.json")).expect("seed.json holds valid state");
        content::fill(&mut state);
        state
    }
}

/// Starts the iconik simulator; its API is under [`API_ROOT`].
pub async fn start(options: SimOptions) -> Result<RunningSimulator, SimError> {
    crate::simulator::serve(NAME, options, routes(), render_errors).await
}

fn routes() -> Routes<IconikState> {
    let public = Router::new().route("/auth/v1/auth/simple/login/", post(login));
    let outside_api = Router::new()
        .route(content::STORAGE_PATH, get(content::storage))
        .route(content::REPLACE_CONTENT_PATH, put(content::replace_content));
    let api = Router::new()
        .route("/search/v1/search/", post(search))
        .route("/assets/v1/assets/", get(list_assets))
        .route("/assets/v1/assets/{id}/", get(get_asset))
        .route(
            "/assets/v1/assets/{id}/approvals/request/",
            get(get_approval).post(request_approval),
        )
        .route("/assets/v1/assets/{id}/versions/", post(create_version))
        .route(
            "/metadata/v1/assets/{id}/views/{view}/",
            get(get_metadata).put(put_metadata),
        )
        .route("/files/v1/assets/{id}/files/", get(content::list_files))
        .route(
            "/files/v1/assets/{id}/files/{file}/download_url/",
            get(download_url),
        )
        .route(
            "/notifications/v1/webhooks/",
            post(create_webhook).get(list_webhooks),
        )
        .route(
            "/notifications/v1/webhooks/{id}/",
            get(get_webhook).delete(delete_webhook),
        );
    Routes {
        public: Router::new().nest(API_ROOT, public).merge(outside_api),
        protected: Router::new().nest(API_ROOT, api),
        authorize,
    }
}

/// Writes an error as iconik does: `{"errors": [message]}`.
pub fn render_errors(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"errors": [message]}))).into_response()
}

fn error_value(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (status, json!({"errors": [message]}))
}

fn authorize(context: &SimContext<IconikState>, headers: &HeaderMap) -> Result<(), Response> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if header("app-id") != Some(SANDBOX_CLIENT_ID) {
        return Err(render_errors(
            StatusCode::UNAUTHORIZED,
            "App-ID is missing or unknown",
        ));
    }
    if header("auth-token").is_some_and(|token| context.tokens.is_valid(token)) {
        Ok(())
    } else {
        Err(render_errors(StatusCode::UNAUTHORIZED, "Token is invalid"))
    }
}

async fn login(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    let body = match json_object(&body, render_errors) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let app_id = headers.get("app-id").and_then(|value| value.to_str().ok());
    if app_id != Some(SANDBOX_CLIENT_ID)
        || body["email"] != SANDBOX_USERNAME
        || body["password"] != SANDBOX_PASSWORD
    {
        return render_errors(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    let token = context.tokens.issue();
    axum::Json(json!({"token": token, "app_id": SANDBOX_CLIENT_ID, "expires_at": null}))
        .into_response()
}

/// The page envelope over `items`.
fn page(items: Vec<Value>, path: &str, query: &HashMap<String, String>) -> Result<Value, Response> {
    let number = |name: &str, default: usize| match query.get(name) {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                render_errors(
                    StatusCode::BAD_REQUEST,
                    &format!("{name} must be a positive integer"),
                )
            }),
        None => Ok(default),
    };
    let page = number("page", 1)?;
    let per_page = number("per_page", 10)?.min(500);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    if page > pages {
        return Err(render_errors(
            StatusCode::NOT_FOUND,
            "Requested page does not exist",
        ));
    }
    let objects: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let url = |page: usize| format!("{API_ROOT}{path}?page={page}&per_page={per_page}");
    Ok(json!({
        "objects": objects, "page": page, "pages": pages, "per_page": per_page, "total": total,
        "first_url": url(1), "last_url": url(pages),
        "prev_url": (page > 1).then(|| url(page - 1)), "next_url": (page < pages).then(|| url(page + 1)),
        "scroll_id": null,
    }))
}

async fn search(
    State(context): Context,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_errors) {
        Ok(body) => body,
        Err(response) => return response,
    };
    if let Some(types) = body.get("doc_types")
        && !types
            .as_array()
            .is_some_and(|types| types.iter().any(|t| t == "assets"))
    {
        return axum::Json(
            json!({"objects": [], "page": 1, "pages": 1, "per_page": 10, "total": 0}),
        )
        .into_response();
    }
    let needle = body["query"].as_str().unwrap_or("").to_lowercase();
    let items = context.store.read(|state| {
        state
            .assets
            .values()
            .filter(|asset| asset["status"] == "ACTIVE")
            .filter(|asset| {
                needle.is_empty()
                    || needle.split_whitespace().all(|word| {
                        asset["title"]
                            .as_str()
                            .is_some_and(|title| title.to_lowercase().contains(word))
                    })
            })
            .cloned()
            .collect::<Vec<_>>()
    });
    match page(items, "/search/v1/search/", &query) {
        Ok(body) => axum::Json(body).into_response(),
        Err(response) => response,
    }
}

async fn list_assets(
    State(context): Context,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let items = context
        .store
        .read(|state| state.assets.values().cloned().collect::<Vec<_>>());
    match page(items, "/assets/v1/assets/", &query) {
        Ok(body) => axum::Json(body).into_response(),
        Err(response) => response,
    }
}

async fn get_asset(State(context): Context, Path(id): Path<String>) -> Response {
    respond(
        context
            .store
            .read(|state| state.assets.get(&id).cloned())
            .ok_or_else(|| not_found(error_value, "asset", &id)),
    )
}

async fn get_approval(State(context): Context, Path(id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        if !state.assets.contains_key(&id) {
            return Err(not_found(error_value, "asset", &id));
        }
        Ok(state.approvals.get(&id).cloned().unwrap_or_else(
            || json!({"status": "N/A", "object_type": "assets", "object_id": id, "approvals_by": []}),
        ))
    }))
}

async fn request_approval(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_errors) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("{API_ROOT}/assets/v1/assets/{id}/approvals/request/");
    let change = Change::new(
        "approval.requested",
        "POST",
        path,
        idempotency_key(&headers),
    );
    let reply = context.store.change(change, |state| {
        let version_id = state
            .assets
            .get(&id)
            .ok_or_else(|| not_found(error_value, "asset", &id))?["versions"][0]["id"]
            .clone();
        let approval = json!({
            "status": "REQUESTED", "object_type": "assets", "object_id": id, "version_id": version_id,
            "users": body.get("users").cloned().unwrap_or_else(|| json!([])),
            "groups": body.get("groups").cloned().unwrap_or_else(|| json!([])),
            "externals": body.get("externals").cloned().unwrap_or_else(|| json!([])),
            "min_number": body.get("min_number").cloned().unwrap_or(json!(1)),
            "requested_by": "u-integration", "request_date": now_rfc3339(false), "approvals_by": [],
        });
        state.approvals.insert(id.clone(), approval.clone());
        Ok((StatusCode::CREATED, approval, Some(id.clone())))
    });
    emit(&context, &reply, "approvals", "create", &id);
    crate::simulator::reply(reply)
}

async fn create_version(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_errors) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let path = format!("{API_ROOT}/assets/v1/assets/{id}/versions/");
    let change = Change::new("version.created", "POST", path, idempotency_key(&headers));
    let reply = context.store.change(change, |state| {
        if !state.assets.contains_key(&id) {
            return Err(not_found(error_value, "asset", &id));
        }
        let version_id = state.new_id();
        let asset = state
            .assets
            .get_mut(&id)
            .ok_or_else(|| not_found(error_value, "asset", &id))?;
        if let Some(source) = body["source_version_id"].as_str()
            && !asset["versions"]
                .as_array()
                .is_some_and(|versions| versions.iter().any(|v| v["id"] == source))
        {
            return Err((
                StatusCode::BAD_REQUEST,
                json!({"errors": {"source_version_id": [format!("version {source} is not a version of asset {id}")]}}),
            ));
        }
        let at = now_rfc3339(false);
        if let Some(versions) = asset["versions"].as_array_mut() {
            versions.push(json!({"id": version_id, "status": "IN_PROGRESS", "date_created": at,
                                 "created_by_user": "u-integration", "is_online": false}));
        }
        asset["date_modified"] = json!(at);
        let versions = asset["versions"].clone();
        if body["copy_metadata"] == true
            && let Some(views) = state.metadata.get_mut(&id)
        {
            for values in views.values_mut() {
                values["version_id"] = json!(version_id);
            }
        }
        Ok((
            StatusCode::CREATED,
            json!({"asset_id": id, "versions": versions}),
            Some(version_id),
        ))
    });
    emit(&context, &reply, "versions", "create", &id);
    crate::simulator::reply(reply)
}

async fn get_metadata(
    State(context): Context,
    Path((id, view)): Path<(String, String)>,
) -> Response {
    respond(context.store.read(|state| {
        if !state.assets.contains_key(&id) {
            return Err(not_found(error_value, "asset", &id));
        }
        if view != SANDBOX_VIEW_ID {
            return Err(not_found(error_value, "metadata view", &view));
        }
        Ok(state
            .metadata
            .get(&id)
            .and_then(|views| views.get(&view))
            .cloned()
            .unwrap_or_else(
                || json!({"object_type": "assets", "object_id": id, "metadata_values": {}}),
            ))
    }))
}

async fn put_metadata(
    State(context): Context,
    headers: HeaderMap,
    Path((id, view)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body, render_errors) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(values) = body["metadata_values"].as_object().cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"errors": {"metadata_values": ["Missing data for required field."]}}),
            ),
        )
            .into_response();
    };
    for (field, entry) in &values {
        if !entry["field_values"].is_array() {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"errors": {field: ["field_values must be a list"]}})),
            )
                .into_response();
        }
    }
    let path = format!("{API_ROOT}/metadata/v1/assets/{id}/views/{view}/");
    let change = Change::new("metadata.updated", "PUT", path, idempotency_key(&headers));
    let reply = context.store.change(change, |state| {
        if !state.assets.contains_key(&id) {
            return Err(not_found(error_value, "asset", &id));
        }
        if view != SANDBOX_VIEW_ID {
            return Err(not_found(error_value, "metadata view", &view));
        }
        let document = state
            .metadata
            .entry(id.clone())
            .or_default()
            .entry(view.clone())
            .or_insert_with(
                || json!({"object_type": "assets", "object_id": id, "metadata_values": {}}),
            );
        for (field, entry) in values {
            document["metadata_values"][field] = entry;
        }
        document["date_modified"] = json!(now_rfc3339(false));
        Ok((StatusCode::OK, document.clone(), Some(id.clone())))
    });
    emit(&context, &reply, "metadata", "update", &id);
    crate::simulator::reply(reply)
}

async fn download_url(
    State(context): Context,
    headers: HeaderMap,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    respond(context.store.read(|state| {
        let files = state
            .files
            .get(&id)
            .ok_or_else(|| not_found(error_value, "asset", &id))?;
        let found = files
            .iter()
            .find(|candidate| candidate["id"] == file.as_str())
            .ok_or_else(|| not_found(error_value, "file", &file))?;
        let file_id = found["id"].as_str().unwrap_or_default();
        Ok(json!({"url": content::signed_link(&headers, &id, file_id)}))
    }))
}

/// POSTs the change envelope to every matching enabled webhook, unless the reply is a
/// refusal or a replay (nothing changed).
fn emit(
    context: &SimContext<IconikState>,
    reply: &crate::simulator::Reply,
    realm: &str,
    operation: &str,
    object_id: &str,
) {
    if reply.replayed || !(200..300).contains(&reply.status) {
        return;
    }
    let targets: Vec<Value> = context.store.read(|state| {
        state
            .webhooks
            .values()
            .filter(|hook| hook["status"] == "ENABLED" && hook["event_type"] == "assets")
            .filter(|hook| hook["realm"].as_str().is_none_or(|r| r == realm))
            .filter(|hook| hook["operation"].as_str().is_none_or(|o| o == operation))
            .cloned()
            .collect()
    });
    let envelope = json!({
        "system_domain_id": "d0d0d0d0-0000-4000-8000-000000000001", "event_type": "assets",
        "realm": realm, "operation": operation, "object_id": object_id, "user_id": "u-integration",
        "request_id": format!("{:032x}", rand::random::<u128>()), "data": reply.body,
    });
    for hook in targets {
        let Some(url) = hook["url"].as_str().map(str::to_owned) else {
            continue;
        };
        let envelope = envelope.clone();
        tokio::spawn(async move {
            let mut request = reqwest::Client::new().post(url).json(&envelope);
            for (name, value) in hook["headers"].as_object().into_iter().flatten() {
                if let Some(value) = value.as_str() {
                    request = request.header(name.as_str(), value);
                }
            }
            if let Err(error) = request.send().await {
                tracing::warn!(webhook = %hook["id"], error = %error, "iconik simulator: webhook delivery failed");
            }
        });
    }
}

async fn create_webhook(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    let body = match json_object(&body, render_errors) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut missing = serde_json::Map::new();
    for field in ["url", "event_type", "status"] {
        if !body[field].is_string() {
            missing.insert(
                field.to_owned(),
                json!(["Missing data for required field."]),
            );
        }
    }
    if !missing.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errors": missing})),
        )
            .into_response();
    }
    if !["ENABLED", "DISABLED", "FAILING", "DELETED"]
        .contains(&body["status"].as_str().unwrap_or(""))
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errors": {"status": ["Must be one of: ENABLED, DISABLED, FAILING, DELETED."]}})),
        )
            .into_response();
    }
    let path = format!("{API_ROOT}/notifications/v1/webhooks/");
    let change = Change::new("webhook.created", "POST", path, idempotency_key(&headers));
    reply(context.store.change(change, |state| {
        let id = state.new_id();
        let mut hook = body.clone();
        hook["id"] = json!(id);
        hook["date_created"] = json!(now_rfc3339(false));
        state.webhooks.insert(id.clone(), hook.clone());
        Ok((StatusCode::CREATED, hook, Some(id)))
    }))
}

async fn list_webhooks(
    State(context): Context,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let items = context
        .store
        .read(|state| state.webhooks.values().cloned().collect::<Vec<_>>());
    match page(items, "/notifications/v1/webhooks/", &query) {
        Ok(body) => axum::Json(body).into_response(),
        Err(response) => response,
    }
}

async fn get_webhook(State(context): Context, Path(id): Path<String>) -> Response {
    respond(
        context
            .store
            .read(|state| state.webhooks.get(&id).cloned())
            .ok_or_else(|| not_found(error_value, "webhook", &id)),
    )
}

async fn delete_webhook(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("{API_ROOT}/notifications/v1/webhooks/{id}/");
    let change = Change::new("webhook.deleted", "DELETE", path, idempotency_key(&headers));
    let reply = context.store.change(change, |state| {
        state
            .webhooks
            .remove(&id)
            .map(|_| (StatusCode::NO_CONTENT, Value::Null, Some(id.clone())))
            .ok_or_else(|| not_found(error_value, "webhook", &id))
    });
    if reply.status == 204 {
        StatusCode::NO_CONTENT.into_response()
    } else {
        crate::simulator::reply(reply)
    }
}
