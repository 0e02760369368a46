//! The Smint.io simulator's bytes and test routes.
//!
//! - Every binary of every LPT has real bytes, kept in [`SmintioState::files`] (small
//!   deterministic bytes made at seed time). A binary's `download_url` is signed for an
//!   hour as Smint.io's are \[V\]: `http://<simulator>/cdn/{lpt}/{binary}?Expires=<unix
//!   seconds>&Signature=<hex>` \[D\], served without a token by [`CDN_PATH`]; a wrong
//!   signature or a past `Expires` is 403. A binary update is a new binary of the same
//!   `binary_type` with the next `version` (older ones stay listed) \[D\]. Smint.io
//!   exposes no digest of a binary \[V\], so neither does the simulator.
//! - `PUT /_sim/smintio/assets/{asset_id}/versions/{version}/content[?rendition=<binary
//!   type>]` (raw body, its `Content-Type` the type) replaces the bytes of that version of
//!   the asset's `master` binary (or the binary type named) without a new version.
//! - `PATCH /_sim/smintio/assets/{asset_id}` (a JSON object merged into
//!   `content_element`) and `PUT /_sim/smintio/assets/{asset_id}/license-terms` (a JSON
//!   array, the new `license_terms`) change an LPT as Smint.io would: a new `version` and
//!   `last_updated_at`, and one entry of the feed (`change_type` `content_updated` or
//!   `license_terms_updated` \[D\]).
//!
//! These routes take no token (loopback only) and no fault, as every `/_sim/*` route.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, put};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{Context, SmintioState, render_error};
use crate::simulator::{Change, SimContext};

/// Where the simulator's CDN serves binaries \[D\].
pub const CDN_PATH: &str = "/cdn/{lpt}/{binary}";

/// How long a signed download URL is valid: an hour \[V\].
pub(super) const URL_VALIDITY_SECS: i64 = 3600;

/// What the simulator signs download URLs with; never leaves the simulator.
const SIGNING_SECRET: &str = "smintio-simulator-cdn-signing-secret";

/// The bytes of one binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// The MIME type served.
    pub content_type: String,
    /// The bytes, base64.
    pub base64: String,
}

impl StoredFile {
    fn new(bytes: &[u8], content_type: &str) -> Self {
        Self {
            content_type: content_type.to_owned(),
            base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

pub(super) fn routes() -> Router<Arc<SimContext<SmintioState>>> {
    Router::new()
        .route(CDN_PATH, get(cdn))
        .route(
            "/_sim/smintio/assets/{asset_id}/versions/{version}/content",
            put(replace_content),
        )
        .route("/_sim/smintio/assets/{asset_id}", patch(edit_asset))
        .route(
            "/_sim/smintio/assets/{asset_id}/license-terms",
            put(replace_license_terms),
        )
}

fn file_key(lpt: &str, binary: &str) -> String {
    format!("{lpt}/{binary}")
}

fn type_of(name: &str) -> &'static str {
    match name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .as_deref()
    {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// Gives every binary deterministic bytes naming it.
pub(super) fn seed_files(state: &mut SmintioState) {
    for (lpt, binaries) in &state.binaries {
        for binary in binaries {
            let uuid = binary["uuid"].as_str().unwrap_or_default();
            let name = binary["recommended_file_name"].as_str().unwrap_or_default();
            let bytes = format!(
                "smint.io sandbox binary {uuid} of {lpt}, version {}\n",
                binary["version"]
            )
            .repeat(40);
            state
                .files
                .entry(file_key(lpt, uuid))
                .or_insert_with(|| StoredFile::new(bytes.as_bytes(), type_of(name)));
        }
    }
}

fn signature(lpt: &str, binary: &str, expires: i64) -> String {
    hex::encode(
        sha2::Sha256::new()
            .chain_update(SIGNING_SECRET.as_bytes())
            .chain_update(format!("/cdn/{lpt}/{binary}?Expires={expires}").as_bytes())
            .finalize(),
    )
}

/// A download URL of `binary` on `host`, signed until `expires` (unix seconds).
pub(super) fn signed_url(host: &str, lpt: &str, binary: &str, expires: i64) -> String {
    let signature = signature(lpt, binary, expires);
    format!("http://{host}/cdn/{lpt}/{binary}?Expires={expires}&Signature={signature}")
}

#[derive(Deserialize)]
struct Signed {
    #[serde(rename = "Expires")]
    expires: Option<i64>,
    #[serde(rename = "Signature")]
    signature: Option<String>,
}

/// `GET /cdn/{lpt}/{binary}?Expires=&Signature=`: a binary's bytes, for a valid signature.
async fn cdn(
    State(context): Context,
    Path((lpt, binary)): Path<(String, String)>,
    Query(signed): Query<Signed>,
) -> Response {
    let (Some(expires), Some(given)) = (signed.expires, signed.signature) else {
        return render_error(StatusCode::FORBIDDEN, "the download URL is not signed");
    };
    if given != signature(&lpt, &binary, expires) {
        return render_error(
            StatusCode::FORBIDDEN,
            "the download URL's signature is wrong",
        );
    }
    if expires < chrono::Utc::now().timestamp() {
        return render_error(StatusCode::FORBIDDEN, "the download URL has expired");
    }
    match context
        .store
        .read(|state| state.files.get(&file_key(&lpt, &binary)).cloned())
    {
        Some(file) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, file.content_type.clone())],
            base64::engine::general_purpose::STANDARD
                .decode(&file.base64)
                .unwrap_or_default(),
        )
            .into_response(),
        None => render_error(
            StatusCode::NOT_FOUND,
            &format!("binary {lpt}/{binary} not found"),
        ),
    }
}

#[derive(Deserialize)]
struct RenditionQuery {
    rendition: Option<String>,
}

fn not_found(what: String) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"message": format!("{what} not found")}),
    )
}

/// Replaces the bytes of one version of an asset's binary, without a new version.
async fn replace_content(
    State(context): Context,
    Path((asset_id, version)): Path<(String, String)>,
    Query(query): Query<RenditionQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let binary_type = query.rendition.unwrap_or_else(|| "master".to_owned());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let path = format!("/_sim/smintio/assets/{asset_id}/versions/{version}/content");
    let change = Change::new("content.replaced", "PUT", path, None);
    let reply = context.store.change(change, |state| {
        let binary = state
            .binaries
            .get(&asset_id)
            .into_iter()
            .flatten()
            .find(|binary| {
                binary["binary_type"] == binary_type.as_str()
                    && binary["version"].to_string().trim_matches('"') == version
            })
            .and_then(|binary| binary["uuid"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                not_found(format!(
                    "asset {asset_id}: {binary_type} binary version {version}"
                ))
            })?;
        state.files.insert(
            file_key(&asset_id, &binary),
            StoredFile::new(&body, &content_type),
        );
        let sha256 = hex::encode(sha2::Sha256::digest(&body));
        Ok((
            StatusCode::OK,
            json!({"asset_id": asset_id, "binary_uuid": binary, "version": version, "size": body.len(), "sha256": sha256}),
            Some(asset_id.clone()),
        ))
    });
    crate::simulator::reply(reply)
}

/// Applies `edit` to the LPT `asset_id`, gives it a new `version` and `last_updated_at`,
/// and records it in the feed as `change_type`.
fn change_asset(
    context: &SimContext<SmintioState>,
    asset_id: &str,
    change_type: &str,
    edit: impl FnOnce(&mut Value),
) -> Response {
    let path = format!("/_sim/smintio/assets/{asset_id}");
    let change = Change::new(format!("asset.{change_type}"), "PATCH", path, None);
    let reply = context.store.change(change, |state| {
        let lpt = state
            .transactions
            .iter_mut()
            .find(|lpt| lpt["uuid"] == asset_id)
            .ok_or_else(|| not_found(format!("license purchase transaction {asset_id}")))?;
        edit(lpt);
        let version = lpt["version"].as_u64().unwrap_or(1) + 1;
        lpt["version"] = json!(version);
        lpt["last_updated_at"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        let mut entry = lpt.clone();
        entry["change_type"] = json!(change_type);
        state.changes.push(entry);
        Ok((
            StatusCode::OK,
            json!({"asset_id": asset_id, "version": version, "change_type": change_type}),
            Some(asset_id.to_owned()),
        ))
    });
    crate::simulator::reply(reply)
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|_| render_error(StatusCode::BAD_REQUEST, &format!("body must be {what}")))
}

/// `PATCH /_sim/smintio/assets/{asset_id}`: merges fields into the `content_element`.
async fn edit_asset(
    State(context): Context,
    Path(asset_id): Path<String>,
    body: Bytes,
) -> Response {
    let fields: serde_json::Map<String, Value> = match json_body(&body, "a JSON object") {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    change_asset(&context, &asset_id, "content_updated", |lpt| {
        for (name, value) in fields {
            lpt["content_element"][name] = value;
        }
    })
}

/// `PUT /_sim/smintio/assets/{asset_id}/license-terms`: replaces the licence terms.
async fn replace_license_terms(
    State(context): Context,
    Path(asset_id): Path<String>,
    body: Bytes,
) -> Response {
    let terms: Vec<Value> = match json_body(&body, "a JSON array of licence terms") {
        Ok(terms) => terms,
        Err(response) => return response,
    };
    change_asset(&context, &asset_id, "license_terms_updated", |lpt| {
        lpt["license_terms"] = json!(terms);
    })
}
