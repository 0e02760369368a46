//! The bytes of the iconik simulator's files, the signed storage links that serve them,
//! and the test-only route that changes them.
//!
//! Every file has real bytes: small deterministic ones generated from its asset, version
//! and name when the seed is loaded, kept in the state as base64 so that they survive a
//! restart of a persisted simulator. A file's digest is its `checksum` field: iconik has
//! that field \[V\] but its algorithm is unpublished; the simulator gives the SHA-256 in hex
//! \[D\]. `size` is the bytes' length.
//!
//! `GET …/files/{file_id}/download_url/` answers `{"url"}`, a link to this simulator's
//! storage, `GET /storage/iconik/{asset_id}/{file_id}?Expires=<unix seconds>&Signature=<hex>`
//! \[D\], signed with a key drawn at start-up and valid for an hour; a missing, wrong or
//! expired signature is answered 403, as a cloud store does. The storage route needs no
//! iconik header, and faults apply to it as to every route of the system.
//!
//! `PUT /_sim/iconik/assets/{asset_id}/versions/{version}/content` (no authentication,
//! loopback only; raw body = the new bytes, `Content-Type` = their type) replaces the
//! bytes of a version's file without creating a version, as when a file is swapped
//! behind the DAM's back: the test of bytes that change between approval and delivery
//! uses it. `version` is the version's id or its number (1 for the first created). With
//! `?keep_checksum=true` the file keeps the checksum of the bytes it had, as when a file
//! is changed on its storage unseen: a fetch must then refuse the bytes. It is recorded as
//! the effect `content.replaced`.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Context, IconikState, error_value, not_found, respond};
use crate::simulator::{Change, reply};

/// The path of the route that replaces a version's bytes.
pub const REPLACE_CONTENT_PATH: &str = "/_sim/iconik/assets/{id}/versions/{version}/content";

/// The path of the simulated storage that signed download links point to.
pub const STORAGE_PATH: &str = "/storage/iconik/{asset}/{file}";

/// The query parameters that sign a storage link: they must never leave the connector.
pub const SIGNING_PARAMETERS: [&str; 2] = ["Expires", "Signature"];

/// How long a signed link is valid.
const LINK_SECONDS: i64 = 3600;

/// The bytes of one file and their type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredContent {
    /// The bytes, base64.
    pub data: String,
    /// Their MIME type.
    pub content_type: String,
}

/// The type of a file by its extension.
fn type_of(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    match extension.as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("tif" | "tiff") => "image/tiff",
        Some("psd") => "image/vnd.adobe.photoshop",
        Some("mov") => "video/quicktime",
        Some("mp4") => "video/mp4",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Small deterministic bytes for a file: a header naming it, then SHA-256 blocks chained
/// from it.
fn sandbox_bytes(asset_id: &str, file: &Value) -> Vec<u8> {
    let mut bytes = format!(
        "iconik sandbox content\nasset {asset_id}\nversion {}\nfile {}\n",
        file["version_id"].as_str().unwrap_or_default(),
        file["name"].as_str().unwrap_or_default()
    )
    .into_bytes();
    let mut block = Sha256::digest(&bytes);
    for _ in 0..8 {
        bytes.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    bytes
}

/// Keeps `bytes` as the content of `file` (of `asset_id`), with its size and, unless
/// `keep_checksum`, its checksum.
fn set(
    state: &mut IconikState,
    (asset_id, file_id): (&str, &str),
    bytes: &[u8],
    content_type: &str,
    keep_checksum: bool,
) {
    state.contents.insert(
        file_id.to_owned(),
        StoredContent {
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
            content_type: content_type.to_owned(),
        },
    );
    let files = state.files.entry(asset_id.to_owned()).or_default();
    if let Some(file) = files.iter_mut().find(|file| file["id"] == file_id) {
        file["size"] = json!(bytes.len());
        if !keep_checksum {
            file["checksum"] = json!(hex::encode(Sha256::digest(bytes)));
        }
    }
}

/// Gives every file without bytes its sandbox bytes.
pub(super) fn fill(state: &mut IconikState) {
    let missing: Vec<(String, Value)> = state
        .files
        .iter()
        .flat_map(|(asset_id, files)| {
            files
                .iter()
                .map(move |file| (asset_id.clone(), file.clone()))
        })
        .filter(|(_, file)| {
            file["id"]
                .as_str()
                .is_some_and(|id| !state.contents.contains_key(id))
        })
        .collect();
    for (asset_id, file) in missing {
        let bytes = sandbox_bytes(&asset_id, &file);
        let name = file["name"].as_str().unwrap_or_default();
        let file_id = file["id"].as_str().unwrap_or_default();
        set(state, (&asset_id, file_id), &bytes, type_of(name), false);
    }
}

/// The bytes and type of a file: those kept, or its sandbox bytes in state written before
/// bytes were kept.
fn bytes_of(state: &IconikState, asset_id: &str, file: &Value) -> (Vec<u8>, String) {
    let name = file["name"].as_str().unwrap_or_default();
    file["id"]
        .as_str()
        .and_then(|id| state.contents.get(id))
        .and_then(|stored| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&stored.data)
                .ok()?;
            Some((bytes, stored.content_type.clone()))
        })
        .unwrap_or_else(|| (sandbox_bytes(asset_id, file), type_of(name).to_owned()))
}

fn signing_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| format!("{:032x}", rand::random::<u128>()))
}

fn signature(asset_id: &str, file_id: &str, expires: i64) -> String {
    let text = format!("{}:{asset_id}:{file_id}:{expires}", signing_key());
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A signed link to the file's bytes on the simulator that `headers` reached.
pub(super) fn signed_link(headers: &HeaderMap, asset_id: &str, file_id: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    let expires = chrono::Utc::now().timestamp() + LINK_SECONDS;
    format!(
        "http://{host}/storage/iconik/{asset_id}/{file_id}?Expires={expires}&Signature={}",
        signature(asset_id, file_id, expires)
    )
}

/// `GET /storage/iconik/{asset}/{file}`: the bytes, for a valid signature.
pub(super) async fn storage(
    State(context): Context,
    Path((asset_id, file_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let expires = query
        .get("Expires")
        .and_then(|text| text.parse::<i64>().ok());
    let valid = expires.is_some_and(|expires| {
        expires >= chrono::Utc::now().timestamp()
            && query.get("Signature") == Some(&signature(&asset_id, &file_id, expires))
    });
    if !valid {
        return (
            StatusCode::FORBIDDEN,
            "AccessDenied: the signature is missing, wrong or expired",
        )
            .into_response();
    }
    let found = context.store.read(|state| {
        let file = state
            .files
            .get(&asset_id)?
            .iter()
            .find(|file| file["id"] == file_id.as_str())?;
        Some((bytes_of(state, &asset_id, file), file["name"].clone()))
    });
    let Some(((bytes, content_type), name)) = found else {
        return (StatusCode::NOT_FOUND, "NoSuchKey").into_response();
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(name) = name.as_str()
        && let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The query of the replace route.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ReplaceQuery {
    /// Keep giving the checksum of the bytes replaced.
    #[serde(default)]
    keep_checksum: bool,
}

/// `PUT /_sim/iconik/assets/{id}/versions/{version}/content`.
pub(super) async fn replace_content(
    State(context): Context,
    Path((asset_id, version)): Path<(String, String)>,
    Query(query): Query<ReplaceQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let path = format!("/_sim/iconik/assets/{asset_id}/versions/{version}/content");
    let change = Change::new("content.replaced", "PUT", path, None);
    reply(context.store.change(change, |state| {
        let asset = state
            .assets
            .get(&asset_id)
            .ok_or_else(|| not_found(error_value, "asset", &asset_id))?;
        let version_id = version_id(asset, &version)
            .ok_or_else(|| not_found(error_value, "version", &version))?;
        let file = state
            .files
            .get(&asset_id)
            .and_then(|files| {
                files
                    .iter()
                    .find(|file| file["version_id"] == version_id.as_str() && file["status"] == "CLOSED")
            })
            .cloned()
            .ok_or_else(|| not_found(error_value, "file of version", &version_id))?;
        let file_id = file["id"].as_str().unwrap_or_default().to_owned();
        let name = file["name"].as_str().unwrap_or_default();
        let content_type = content_type.unwrap_or_else(|| type_of(name).to_owned());
        set(state, (&asset_id, &file_id), &body, &content_type, query.keep_checksum);
        let checksum = state
            .files
            .get(&asset_id)
            .and_then(|files| files.iter().find(|file| file["id"] == file_id.as_str()))
            .map(|file| file["checksum"].clone());
        Ok((
            StatusCode::OK,
            json!({"asset_id": asset_id, "version_id": version_id, "file_id": file_id, "size": body.len(),
                   "checksum": checksum, "content_type": content_type}),
            Some(file_id),
        ))
    }))
}

/// The id of the version `version` names: an id, or a number (1 for the first created).
fn version_id(asset: &Value, version: &str) -> Option<String> {
    let mut versions: Vec<&Value> = asset["versions"].as_array()?.iter().collect();
    if let Some(found) = versions.iter().find(|candidate| candidate["id"] == version) {
        return found["id"].as_str().map(str::to_owned);
    }
    versions.sort_by(|a, b| {
        a["date_created"]
            .as_str()
            .unwrap_or_default()
            .cmp(b["date_created"].as_str().unwrap_or_default())
    });
    let index = version.parse::<usize>().ok()?.checked_sub(1)?;
    versions.get(index)?["id"].as_str().map(str::to_owned)
}

/// `GET /files/v1/assets/{id}/files/`: a page of the asset's files after `last_id`.
pub(super) async fn list_files(
    State(context): Context,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let per_page = match query.get("per_page").map(|text| text.parse::<usize>()) {
        None => 10,
        Some(Ok(number)) if number >= 1 => number.min(500),
        Some(_) => {
            return respond(Err(error_value(
                StatusCode::BAD_REQUEST,
                "per_page must be a positive integer",
            )));
        }
    };
    respond(context.store.read(|state| {
        if !state.assets.contains_key(&id) {
            return Err(not_found(error_value, "asset", &id));
        }
        let files = state.files.get(&id).cloned().unwrap_or_default();
        let start = match query.get("last_id") {
            Some(last) => files
                .iter()
                .position(|file| file["id"] == last.as_str())
                .map(|index| index + 1)
                .ok_or_else(|| not_found(error_value, "file", last))?,
            None => 0,
        };
        let objects: Vec<Value> = files.iter().skip(start).take(per_page).cloned().collect();
        let next_url = (start + objects.len() < files.len()).then(|| {
            let last = objects
                .last()
                .and_then(|file| file["id"].as_str())
                .unwrap_or_default();
            format!(
                "{}/files/v1/assets/{id}/files/?per_page={per_page}&last_id={last}",
                super::API_ROOT
            )
        });
        Ok(json!({"objects": objects, "per_page": per_page, "next_url": next_url}))
    }))
}
