//! The bytes of the Canto simulator: every version of every content has real bytes,
//! kept in [`CantoState::files`] (small deterministic bytes made at seed time, an upload's
//! file once it becomes a version), served by the `api_binary` download with the Bearer
//! token, and replaceable by a test.
//!
//! - `GET /api_binary/v1/{scheme}/{id}/download` \[V\] serves the current version, with
//!   `?version=N` any version \[D\]: the `uri.download` of each `versionHistory` entry
//!   names that version this way, while the content's `url.download` stays the current one.
//! - Canto exposes one digest, the `md5` of the content's current version \[V\]; the
//!   simulator keeps it (and `size`) in step with the current version's bytes. Versions
//!   carry no digest of their own, as in Canto.
//! - `PUT /_sim/canto/assets/{asset_id}/versions/{version}/content` (raw body, its
//!   `Content-Type` the type; no auth, loopback) replaces the bytes of an existing version
//!   without creating a version, as when a file changes behind a workflow's back \[D\].

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use md5::Digest as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CantoState, Context, content_key, error_value, render_error};
use crate::simulator::Change;

/// The bytes of one version of one content.
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

    fn bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.base64)
            .unwrap_or_default()
    }
}

/// The key of a version's bytes in [`CantoState::files`].
pub(super) fn file_key(content_key: &str, version: &str) -> String {
    format!("{content_key}@{version}")
}

/// The MIME type of a file name's extension.
pub(super) fn type_of(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("pdf") => "application/pdf",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// The deterministic bytes of a seeded version: a few kilobytes naming it.
fn generated(content_key: &str, version: &str) -> Vec<u8> {
    format!("canto sandbox content {content_key}, version {version}\n")
        .repeat(48)
        .into_bytes()
}

fn version_of(entry: &Value) -> Option<String> {
    entry["version"].as_str().map(str::to_owned)
}

/// The current version of a content: the entry marked `currentVersion`, else the last.
pub(super) fn current_version(content: &Value) -> Option<String> {
    let history = content["versionHistory"].as_array()?;
    history
        .iter()
        .find(|entry| entry["currentVersion"] == true)
        .or_else(|| history.last())
        .and_then(version_of)
}

/// The bytes of `version` of the content at `key`: stored, or generated for a state
/// written before the simulator kept bytes.
fn file_of(state: &CantoState, key: &str, version: &str) -> StoredFile {
    state
        .files
        .get(&file_key(key, version))
        .cloned()
        .unwrap_or_else(|| {
            let name = state.contents[key]["name"].as_str().unwrap_or_default();
            StoredFile::new(&generated(key, version), type_of(name))
        })
}

/// Sets the content's `md5` and `size` from its current version's bytes.
pub(super) fn refresh_current(state: &mut CantoState, key: &str) {
    let Some(version) = state.contents.get(key).and_then(current_version) else {
        return;
    };
    let bytes = file_of(state, key, &version).bytes();
    if let Some(content) = state.contents.get_mut(key) {
        content["md5"] = json!(hex::encode(md5::Md5::digest(&bytes)));
        content["size"] = json!(bytes.len().to_string());
    }
}

/// Gives every version of every content its bytes and its own `uri.download`.
pub(super) fn seed_files(state: &mut CantoState) {
    let keys: Vec<String> = state.contents.keys().cloned().collect();
    for key in keys {
        let content = &state.contents[&key];
        let name = content["name"].as_str().unwrap_or_default().to_owned();
        let versions: Vec<String> = content["versionHistory"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(version_of)
            .collect();
        for version in &versions {
            let bytes = generated(&key, version);
            state
                .files
                .entry(file_key(&key, version))
                .or_insert_with(|| StoredFile::new(&bytes, type_of(&name)));
        }
        if let Some(history) = state
            .contents
            .get_mut(&key)
            .and_then(|content| content["versionHistory"].as_array_mut())
        {
            for entry in history {
                let Some(version) = version_of(entry) else {
                    continue;
                };
                entry["uri"]["download"] = json!(version_download(&key, &version));
            }
        }
        refresh_current(state, &key);
    }
}

/// The download path of one version \[D\].
pub(super) fn version_download(content_key: &str, version: &str) -> String {
    format!("/api_binary/v1/{content_key}/download?version={version}")
}

/// Keeps an uploaded file as the bytes of the version it became.
pub(super) fn keep_upload(state: &mut CantoState, key: &str, version: &str, upload: &Value) {
    let bytes = upload["content_base64"]
        .as_str()
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .unwrap_or_default();
    let name = upload["name"].as_str().unwrap_or_default();
    state.files.insert(
        file_key(key, version),
        StoredFile::new(&bytes, type_of(name)),
    );
    refresh_current(state, key);
}

#[derive(Deserialize)]
pub(super) struct DownloadQuery {
    version: Option<String>,
}

/// `GET /api_binary/v1/{scheme}/{id}/download[?version=N]`: the bytes of a version.
pub(super) async fn download(
    State(context): Context,
    Path((scheme, id)): Path<(String, String)>,
    Query(query): Query<DownloadQuery>,
) -> Response {
    let key = content_key(&scheme, &id);
    let found = context.store.read(|state| {
        let content = state.contents.get(&key)?;
        let version = query.version.clone().or_else(|| current_version(content))?;
        let known = content["versionHistory"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|entry| entry["version"] == version.as_str());
        let name = content["name"].as_str().unwrap_or_default().to_owned();
        Some(known.then(|| (file_of(state, &key, &version), name)))
    });
    match found {
        Some(Some((file, name))) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, file.content_type.clone()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            file.bytes(),
        )
            .into_response(),
        Some(None) => render_error(
            StatusCode::NOT_FOUND,
            &format!(
                "content {key} has no version {}",
                query.version.unwrap_or_default()
            ),
        ),
        None => render_error(StatusCode::NOT_FOUND, &format!("content {key} not found")),
    }
}

/// `PUT /_sim/canto/assets/{asset_id}/versions/{version}/content`: replaces the bytes of
/// an existing version, without a new version.
pub(super) async fn replace_content(
    State(context): Context,
    Path((asset_id, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let path = format!("/_sim/canto/assets/{asset_id}/versions/{version}/content");
    let change = Change::new("content.replaced", "PUT", path, None);
    let reply = context.store.change(change, |state| {
        let key = state
            .contents
            .iter()
            .find(|(_, content)| content["id"] == asset_id.as_str())
            .map(|(key, _)| key.clone())
            .ok_or_else(|| {
                error_value(
                    StatusCode::NOT_FOUND,
                    &format!("content {asset_id} not found"),
                )
            })?;
        let known = state.contents[&key]["versionHistory"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|entry| entry["version"] == version.as_str());
        if !known {
            return Err(error_value(
                StatusCode::NOT_FOUND,
                &format!("content {key} has no version {version}"),
            ));
        }
        state.files.insert(
            file_key(&key, &version),
            StoredFile::new(&body, &content_type),
        );
        refresh_current(state, &key);
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
        Ok((
            StatusCode::OK,
            json!({"asset": key, "version": version, "size": body.len(), "sha256": sha256}),
            Some(key.clone()),
        ))
    });
    crate::simulator::reply(reply)
}
