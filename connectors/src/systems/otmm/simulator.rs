//! The OTMM simulator: OpenText Media Management REST `otmmapi` v6 under `/otmmapi/v6`.
//!
//! Served as `otmm.md` describes: session login (`POST /sessions`, form, then
//! `X-Requested-By: <session id>`) and the OAuth2 password grant
//! (`POST /sessions/oauth2/token` → `token_info.oauth_token.accessToken`, then Bearer)
//! \[V\]; `POST /search/text` with `keyword_query`, scalar `search_condition_list`,
//! `after`/`limit`, `load_type`, `return_type=ids` \[V\]; `GET /assets/{id}` with the
//! metadata element tree \[V\]; `GET /assets/{id}/contents` and `GET /renditions/{id}` \[V\];
//! bulk metadata edit `PATCH /assets` \[V\]; `GET /assets/{id}/versions` \[I, shape D\]; new
//! version `POST /assets/{id}/versions` \[D: the real check-in paths are unverified\].
//! Errors are `{"exception_body": {"message", "http_response_code"}}`.
//! OTMM has no webhooks \[V\]; changes are found by polling the search, filtered with
//! `ARTESIA.OPERATOR.DATE.IS_ON_OR_AFTER` on [`DATE_LAST_UPDATED_FIELD`] and sorted by it
//! (`sort=asc_…`) \[I\]. Metadata edits and new versions stamp `date_last_updated`.
//! OTMM has no idempotency key; the simulator deduplicates on `X-Gridflow-Idempotency-Key` \[D\].
//! Every version has real bytes, with their SHA-256 as `content_checksum`, and a test-only
//! route replaces them ([`content`]).

// Handlers return an early `Response` through `Result` (axum's idiom for a rejection);
// boxing it would buy nothing on a loopback test server.
#![allow(clippy::result_large_err)]

pub mod content;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::simulator::http::respond;
use crate::simulator::http::serde_urlencoded_pairs;
use crate::simulator::{
    Change, Routes, RunningSimulator, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD,
    SANDBOX_USERNAME, SimContext, SimError, SimOptions, SimState, idempotency_key, reply,
};

/// The simulator's name.
pub const NAME: &str = "otmm";

/// The path prefix of every resource; a connector's base URL ends with it.
pub const API_ROOT: &str = "/otmmapi/v6";

type Context = State<Arc<SimContext<OtmmState>>>;

/// One version of one asset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimAsset {
    /// 40-hex id of this version.
    pub asset_id: String,
    /// The id of the first version.
    pub original_asset_id: String,
    /// 1, 2, …
    pub version: u32,
    /// Whether this is the newest version.
    pub latest_version: bool,
    /// File-like name.
    pub name: String,
    /// MIME type.
    pub mime_type: String,
    /// OTMM content type (`BITMAP`, `ACROBAT`, `VIDEO`).
    pub content_type: String,
    /// Bytes.
    pub content_size: u64,
    /// The system `expired` flag.
    pub expired: bool,
    /// Last update, RFC 3339.
    pub date_last_updated: String,
    /// Metadata by field id: (field name, value).
    pub metadata: BTreeMap<String, (String, String)>,
    /// The master rendition's id.
    pub master_rendition_id: String,
    /// The master's bytes in base64 ([`content`]); absent in state written before bytes
    /// were kept, when the version's sandbox bytes are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The checksum OTMM keeps when it no longer matches the bytes (the replace route's
    /// `keep_checksum`); the bytes' own SHA-256 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_checksum: Option<String>,
    /// When this version was imported, RFC 3339; the seed's import day when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_imported: Option<String>,
}

/// Everything the OTMM simulator holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtmmState {
    /// Asset versions by id.
    pub assets: BTreeMap<String, SimAsset>,
    /// Job ids issued.
    pub jobs: BTreeMap<String, Value>,
    /// The last number used in generated ids.
    pub next_id: u64,
}

/// The field names of the seeded metadata model.
const FIELDS: [(&str, &str); 7] = [
    ("CUSTOM.FIELD.STATUS", "Approval status"),
    ("CUSTOM.FIELD.BRAND", "Brand"),
    ("CUSTOM.FIELD.PRODUCT", "Product"),
    ("CUSTOM.FIELD.REGION", "Region"),
    ("CUSTOM.FIELD.LANGUAGE", "Language"),
    ("CUSTOM.FIELD.RIGHTS_FROM", "Usage rights from"),
    ("ARTESIA.FIELD.EXPIRATIONDATE", "Expiration date"),
];

fn field_name(id: &str) -> String {
    FIELDS
        .iter()
        .find(|(field, _)| *field == id)
        .map_or_else(|| id.to_owned(), |(_, name)| (*name).to_owned())
}

/// A deterministic 40-hex id from a number.
fn hex_id(seed: u64) -> String {
    let mut value = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B;
    let mut id = String::with_capacity(40);
    while id.len() < 40 {
        value ^= value << 13;
        value ^= value >> 7;
        value ^= value << 17;
        id.push_str(&format!("{value:016x}"));
    }
    id.truncate(40);
    id
}

impl OtmmState {
    fn new_number(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

impl SimState for OtmmState {
    /// The seed data of `seed.json`, next to this file, each version with its sandbox
    /// bytes.
    fn seed() -> Self {
        let mut state: Self =
            serde_json::from_str(include_str!("seed.json")).expect("seed.json holds valid state");
        state.assets.values_mut().for_each(content::fill);
        state
    }
}

/// The id of seeded asset `number` (1: Citrus Spritz v1, 2: its v2, 3: expired shelf
/// talker, 4: pending sell sheet, 5: rejected logo, 6: approved label without rights
/// dates, 7: restricted film).
pub fn seeded_asset_id(number: u64) -> String {
    hex_id(number)
}

/// Starts the OTMM simulator.
pub async fn start(options: SimOptions) -> Result<RunningSimulator, SimError> {
    crate::simulator::serve(NAME, options, routes(), render_exception).await
}

fn routes() -> Routes<OtmmState> {
    let public = Router::new()
        .route("/otmmapi/v6/sessions", post(session))
        .route("/otmmapi/v6/sessions/oauth2/token", post(oauth_token))
        .route(content::REPLACE_CONTENT_PATH, put(content::replace_content));
    let protected = Router::new()
        .route("/otmmapi/v6/search/text", post(search).get(search_get))
        .route("/otmmapi/v6/assets", axum::routing::patch(bulk_edit))
        .route("/otmmapi/v6/assets/{id}", get(get_asset))
        .route(
            "/otmmapi/v6/assets/{id}/versions",
            get(versions).post(new_version),
        )
        .route("/otmmapi/v6/assets/{id}/contents", get(content::contents))
        .route("/otmmapi/v6/renditions/{id}", get(content::rendition));
    Routes {
        public,
        protected,
        authorize,
    }
}

/// Writes an error as OTMM's `exception_body`.
pub fn render_exception(status: StatusCode, message: &str) -> Response {
    let (status, body) = exception(status, message);
    (status, axum::Json(body)).into_response()
}

fn exception(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"exception_body": {"message": message, "http_response_code": status.as_u16()}}),
    )
}

fn authorize(context: &SimContext<OtmmState>, headers: &HeaderMap) -> Result<(), Response> {
    if context.tokens.check_bearer(headers) {
        return Ok(());
    }
    let session = headers
        .get("x-requested-by")
        .and_then(|value| value.to_str().ok());
    if session.is_some_and(|session| context.tokens.is_valid(session)) {
        return Ok(());
    }
    Err(render_exception(
        StatusCode::UNAUTHORIZED,
        "Session is invalid or has expired. Please log in again.",
    ))
}

async fn session(State(context): Context, body: Bytes) -> Response {
    let form = serde_urlencoded_pairs(&body);
    if form.get("username").map(String::as_str) != Some(SANDBOX_USERNAME)
        || form.get("password").map(String::as_str) != Some(SANDBOX_PASSWORD)
    {
        return render_exception(StatusCode::UNAUTHORIZED, "Invalid username or password.");
    }
    let id = context.tokens.issue();
    let mut response = axum::Json(json!({"session_resource": {"session": {
        "id": id, "login_name": SANDBOX_USERNAME, "user_id": "1001", "role_name": "Content Manager", "domain_name": "OTMM", "validation_key": 0}}}))
    .into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!("JSESSIONID={id}; Path=/otmmapi; HttpOnly"))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn oauth_token(State(context): Context, body: Bytes) -> Response {
    let form = serde_urlencoded_pairs(&body);
    let get = |name: &str| form.get(name).map(String::as_str);
    if get("grant_type") != Some("password") {
        return render_exception(StatusCode::BAD_REQUEST, "grant_type must be password");
    }
    if get("client_id") != Some(SANDBOX_CLIENT_ID)
        || get("client_secret") != Some(SANDBOX_CLIENT_SECRET)
        || get("username") != Some(SANDBOX_USERNAME)
        || get("password") != Some(SANDBOX_PASSWORD)
    {
        return render_exception(
            StatusCode::UNAUTHORIZED,
            "Invalid client or user credentials.",
        );
    }
    let token = context.tokens.issue();
    axum::Json(json!({"token_info": {"oauth_token": {"accessToken": token, "tokenType": "Bearer", "expiresIn": 3600}}})).into_response()
}

/// When the seeded versions were imported.
const SEED_IMPORTED: &str = "2026-01-15T10:00:00Z";

/// An asset in OTMM's response shape.
fn render_asset(asset: &SimAsset) -> Value {
    let elements: Vec<Value> = asset
        .metadata
        .iter()
        .map(|(id, (name, value))| {
            json!({"id": id, "name": name, "type": "com.artesia.metadata.MetadataField",
                   "value": {"value": {"type": "string", "value": value}}})
        })
        .collect();
    let bytes = content::bytes_of(asset);
    let imported = asset.date_imported.as_deref().unwrap_or(SEED_IMPORTED);
    json!({
        "asset_id": asset.asset_id, "name": asset.name, "mime_type": asset.mime_type, "content_type": asset.content_type,
        "content_size": bytes.len(), "metadata_model_id": "ARTESIA.MODEL.DEFAULT", "version": asset.version,
        "latest_version": asset.latest_version, "original_asset_id": asset.original_asset_id, "asset_state": "NORMAL",
        "locked": false, "checked_out": false, "deleted": false, "expired": asset.expired, "content_editable": true,
        "date_imported": imported, "date_last_updated": asset.date_last_updated,
        "master_content_info": {"id": asset.master_rendition_id, "name": asset.name, "mime_type": asset.mime_type,
            "content_size": bytes.len(), "content_checksum": asset.content_checksum.clone().unwrap_or_else(|| content::checksum(&bytes)),
            "url": format!("{API_ROOT}/renditions/{}", asset.master_rendition_id)},
        "metadata": {"metadata_element_list": [{"id": "ARTESIA.CATEGORY.GENERAL", "metadata_element_list": elements}]}
    })
}

async fn search_get(context: Context, uri: axum::http::Uri) -> Response {
    let query = Bytes::from(uri.query().unwrap_or_default().to_owned());
    search(context, query).await
}

async fn search(State(context): Context, body: Bytes) -> Response {
    let form = serde_urlencoded_pairs(&body);
    let keyword = form
        .get("keyword_query")
        .map(|keyword| keyword.trim().to_lowercase())
        .filter(|keyword| !keyword.is_empty() && keyword != "*");
    let conditions = match form.get("search_condition_list") {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => value
                .pointer("/search_condition_list/search_condition")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            Err(error) => {
                return render_exception(
                    StatusCode::BAD_REQUEST,
                    &format!("search_condition_list is not valid JSON: {error}"),
                );
            }
        },
        None => Vec::new(),
    };
    let number = |name: &str, default: usize| -> Result<usize, Response> {
        match form.get(name) {
            Some(text) => text.parse().map_err(|_| {
                render_exception(StatusCode::BAD_REQUEST, &format!("{name} must be a number"))
            }),
            None => Ok(default),
        }
    };
    let (after, limit) = match (number("after", 0), number("limit", 25)) {
        (Ok(after), Ok(limit)) => (after, limit.clamp(1, 1000)),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let ids_only = form.get("return_type").map(String::as_str) == Some("ids");
    let hits: Vec<SimAsset> = context.store.read(|state| {
        state
            .assets
            .values()
            .filter(|asset| asset.latest_version)
            .filter(|asset| {
                keyword.as_ref().is_none_or(|keyword| {
                    asset.name.to_lowercase().contains(keyword.as_str())
                        || asset
                            .metadata
                            .values()
                            .any(|(_, value)| value.to_lowercase().contains(keyword.as_str()))
                })
            })
            .filter(|asset| {
                conditions
                    .iter()
                    .all(|condition| matches_condition(asset, condition))
            })
            .cloned()
            .collect()
    });
    let mut hits = hits;
    match form.get("sort").map(String::as_str) {
        None | Some("") => {}
        Some(sort) => match sort.split_once('_') {
            Some((direction @ ("asc" | "desc"), DATE_LAST_UPDATED_FIELD)) => {
                hits.sort_by(|a, b| {
                    (instant(&a.date_last_updated), &a.asset_id)
                        .cmp(&(instant(&b.date_last_updated), &b.asset_id))
                });
                if direction == "desc" {
                    hits.reverse();
                }
            }
            _ => {
                return render_exception(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "cannot sort by {sort:?}; sort is asc_ or desc_{DATE_LAST_UPDATED_FIELD}"
                    ),
                );
            }
        },
    }
    let total = hits.len();
    let page: Vec<&SimAsset> = hits.iter().skip(after).take(limit).collect();
    let ids: Vec<&str> = page.iter().map(|asset| asset.asset_id.as_str()).collect();
    let mut result = json!({"search_result_resource": {"search_result": {
        "hit_count": page.len(), "total_hit_count": total, "offset": after, "asset_id_list": ids, "facet_field_response_list": []}}});
    if !ids_only {
        result["search_result_resource"]["asset_list"] =
            Value::Array(page.iter().map(|asset| render_asset(asset)).collect());
    }
    axum::Json(result).into_response()
}

/// The system field of an asset's last change \[I\]; searches filter on it with
/// `ARTESIA.OPERATOR.DATE.IS_ON_OR_AFTER` and sort by it (`asc_` / `desc_` + field), which
/// is how the `otmm` poller finds changes.
pub const DATE_LAST_UPDATED_FIELD: &str = "ARTESIA.FIELD.DATE LAST UPDATED";

/// An RFC 3339 instant, for ordering; an unreadable one sorts first.
fn instant(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc))
}

/// Now, as the simulator stamps `date_last_updated`: milliseconds, so that two changes in
/// one second still order, and strictly after the previous stamp, so that two edits in
/// one millisecond order as they were made (the feed copes with shared instants, but a
/// test of "oldest first" needs the order to be the edits' order).
fn now_millis() -> String {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_millis();
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    let stamp = now.max(previous + 1);
    chrono::DateTime::from_timestamp_millis(stamp)
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn matches_condition(asset: &SimAsset, condition: &Value) -> bool {
    let Some(field) = condition["metadata_field_id"].as_str() else {
        return true;
    };
    if field == DATE_LAST_UPDATED_FIELD {
        let wanted = condition["value"].as_str().and_then(instant);
        return match condition["relational_operator_id"].as_str() {
            Some("ARTESIA.OPERATOR.DATE.IS_ON_OR_AFTER") => {
                instant(&asset.date_last_updated) >= wanted
            }
            _ => instant(&asset.date_last_updated) == wanted,
        };
    }
    let wanted = condition["value"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let value = asset
        .metadata
        .get(field)
        .map(|(_, value)| value.to_lowercase())
        .unwrap_or_default();
    match condition["relational_operator_id"]
        .as_str()
        .unwrap_or_default()
    {
        "ARTESIA.OPERATOR.CHAR.CONTAINS" => value.contains(&wanted),
        _ => value == wanted,
    }
}

fn asset_not_found(id: &str) -> (StatusCode, Value) {
    exception(
        StatusCode::NOT_FOUND,
        &format!("Asset with id {id} does not exist."),
    )
}

async fn get_asset(State(context): Context, Path(id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        let asset = state.assets.get(&id).ok_or_else(|| asset_not_found(&id))?;
        Ok(json!({"asset_resource": {"asset": render_asset(asset)}}))
    }))
}

async fn versions(State(context): Context, Path(id): Path<String>) -> Response {
    respond(context.store.read(|state| {
        let asset = state.assets.get(&id).ok_or_else(|| asset_not_found(&id))?;
        let mut list: Vec<&SimAsset> = state
            .assets
            .values()
            .filter(|other| other.original_asset_id == asset.original_asset_id)
            .collect();
        list.sort_by_key(|other| other.version);
        let list: Vec<Value> = list.into_iter().map(render_asset).collect();
        Ok(json!({"assets_resource": {"asset_list": list}}))
    }))
}

async fn bulk_edit(State(context): Context, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return render_exception(StatusCode::BAD_REQUEST, "request body is not JSON");
    };
    let request = &body["bulk_edit_request_param"]["bulk_edit_request"];
    let ids: Vec<String> = request["context"]["asset_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return render_exception(
            StatusCode::BAD_REQUEST,
            "bulk_edit_request.context.asset_ids is empty",
        );
    }
    let mut entries: Vec<(String, String)> = Vec::new();
    for section in request["metadata_values"]["metadata_edit_id_value_list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for entry in section["field_id_value_entries"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(field) = entry["metadata_field_id"].as_str() else {
                return render_exception(
                    StatusCode::BAD_REQUEST,
                    "field_id_value_entries entry without metadata_field_id",
                );
            };
            let value = match &entry["metadata_value"]["value"]["value"] {
                Value::String(text) => text.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            entries.push((field.to_owned(), value));
        }
    }
    let change = Change::new(
        "metadata.updated",
        "PATCH",
        "/otmmapi/v6/assets",
        idempotency_key(&headers),
    );
    reply(context.store.change(change, |state| {
        for id in &ids {
            if !state.assets.contains_key(id) {
                return Err(asset_not_found(id));
            }
        }
        let at = now_millis();
        for id in &ids {
            if let Some(asset) = state.assets.get_mut(id) {
                for (field, value) in &entries {
                    asset
                        .metadata
                        .insert(field.clone(), (field_name(field), value.clone()));
                }
                asset.date_last_updated = at.clone();
            }
        }
        Ok((
            StatusCode::OK,
            json!({"bulk_asset_result_representation": {"bulk_asset_result": {
            "successful_object_list": ids, "failed_object_list": []}}}),
            ids.first().cloned(),
        ))
    }))
}

async fn new_version(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = serde_urlencoded_pairs(&body);
    let Some(file_name) = form
        .get("file_name")
        .filter(|name| !name.trim().is_empty())
        .cloned()
    else {
        return render_exception(StatusCode::BAD_REQUEST, "file_name is required");
    };
    let path = format!("/otmmapi/v6/assets/{id}/versions");
    let change = Change::new("version.created", "POST", path, idempotency_key(&headers));
    reply(context.store.change(change, |state| {
        let current = state.assets.get(&id).cloned().ok_or_else(|| asset_not_found(&id))?;
        if !current.latest_version {
            return Err(exception(StatusCode::CONFLICT, &format!("Asset {id} is not the latest version.")));
        }
        let number = state.new_number();
        let new_id = hex_id(number);
        let job_id = format!("{}", 50_000 + number);
        for asset in state.assets.values_mut() {
            if asset.original_asset_id == current.original_asset_id {
                asset.latest_version = false;
            }
        }
        let mut next = current.clone();
        next.asset_id = new_id.clone();
        next.version = current.version + 1;
        next.latest_version = true;
        next.name = file_name.clone();
        next.master_rendition_id = hex_id(number + 10_000);
        next.date_last_updated = now_millis();
        next.date_imported = Some(next.date_last_updated.clone());
        content::fill(&mut next);
        state.assets.insert(new_id.clone(), next);
        state.jobs.insert(job_id.clone(), json!({"job_id": job_id, "status": "COMPLETED", "comment": form.get("comment")}));
        Ok((StatusCode::ACCEPTED, json!({"job_handle": {"job_id": job_id}, "asset_id": new_id, "version": current.version + 1}), Some(new_id.clone())))
    }))
}
