//! The bytes of the OTMM simulator's asset versions, as `GET /assets/{id}/contents` and
//! `GET /renditions/{id}` serve them, and the test-only route that changes them.
//!
//! Every version has real bytes: small deterministic ones generated from its asset,
//! version and file name when the seed is loaded (or a version is created), kept in the
//! state as base64 so that they survive a restart of a persisted simulator. The master's
//! digest is given as `master_content_info.content_checksum`: OTMM has that field \[V\] but
//! its algorithm is unpublished; the simulator gives the SHA-256 in hex \[D\].
//!
//! `PUT /_sim/otmm/assets/{asset_id}/versions/{version}/content` (no authentication,
//! loopback only; raw body = the new bytes, `Content-Type` = their type) replaces the
//! bytes of an existing version without creating a version and without touching
//! `date_last_updated`, as when a file is swapped behind the DAM's back: the test of
//! bytes that change between approval and delivery uses it. `asset_id` is any version's
//! id, `version` the version number (or that version's own id). With `?keep_checksum=true`
//! OTMM goes on giving the checksum of the bytes it had, as when a file is changed on its
//! storage unseen: a fetch must then refuse the bytes. It is recorded as the effect
//! `content.replaced`; faults apply to it as to every route of the system.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Context, SimAsset, asset_not_found, exception, render_exception, respond};
use crate::simulator::{Change, reply};

/// The path of the route that replaces a version's bytes.
pub const REPLACE_CONTENT_PATH: &str = "/_sim/otmm/assets/{id}/versions/{version}/content";

/// Small deterministic bytes for a version: a header naming it, then SHA-256 blocks
/// chained from it.
pub(super) fn sandbox_bytes(asset: &SimAsset) -> Vec<u8> {
    let mut bytes = format!(
        "OTMM sandbox content\nasset {}\nversion {}\nfile {}\n",
        asset.original_asset_id, asset.version, asset.name
    )
    .into_bytes();
    let mut block = Sha256::digest(&bytes);
    for _ in 0..8 {
        bytes.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    bytes
}

/// Gives `asset` its own sandbox bytes.
pub(super) fn fill(asset: &mut SimAsset) {
    let bytes = sandbox_bytes(asset);
    set(asset, &bytes);
}

fn set(asset: &mut SimAsset, bytes: &[u8]) {
    asset.content = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
    asset.content_size = bytes.len() as u64;
    asset.content_checksum = None;
}

/// The query of the replace route.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ReplaceQuery {
    /// Keep giving the checksum of the bytes replaced.
    #[serde(default)]
    keep_checksum: bool,
}

/// The bytes of `asset`: those kept, or its sandbox bytes in state written before bytes
/// were kept.
pub(super) fn bytes_of(asset: &SimAsset) -> Vec<u8> {
    asset
        .content
        .as_deref()
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .unwrap_or_else(|| sandbox_bytes(asset))
}

/// The SHA-256 of `bytes` in hex, as the simulator gives `content_checksum`.
pub(super) fn checksum(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The master's bytes as a download.
pub(super) fn binary(asset: &SimAsset) -> Response {
    let mut response = bytes_of(asset).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&asset.mime_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", asset.name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `PUT /_sim/otmm/assets/{id}/versions/{version}/content`.
pub(super) async fn replace_content(
    State(context): Context,
    Path((id, version)): Path<(String, String)>,
    Query(query): Query<ReplaceQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let path = format!("/_sim/otmm/assets/{id}/versions/{version}/content");
    let change = Change::new("content.replaced", "PUT", path, None);
    reply(context.store.change(change, |state| {
        let original = state
            .assets
            .get(&id)
            .ok_or_else(|| asset_not_found(&id))?
            .original_asset_id
            .clone();
        let asset = state
            .assets
            .values_mut()
            .find(|asset| {
                asset.original_asset_id == original
                    && (asset.version.to_string() == version || asset.asset_id == version)
            })
            .ok_or_else(|| {
                exception(
                    StatusCode::NOT_FOUND,
                    &format!("Asset {id} has no version {version}."),
                )
            })?;
        let kept = query.keep_checksum.then(|| {
            asset
                .content_checksum
                .clone()
                .unwrap_or_else(|| checksum(&bytes_of(asset)))
        });
        set(asset, &body);
        asset.content_checksum = kept;
        if let Some(content_type) = content_type {
            asset.mime_type = content_type;
        }
        Ok((
            StatusCode::OK,
            json!({"asset_id": asset.asset_id, "version": asset.version, "content_size": asset.content_size,
                   "content_checksum": asset.content_checksum.clone().unwrap_or_else(|| checksum(&body)),
                   "mime_type": asset.mime_type}),
            Some(asset.asset_id.clone()),
        ))
    }))
}

/// `GET /assets/{id}/contents`: the master of that version.
pub(super) async fn contents(State(context): Context, Path(id): Path<String>) -> Response {
    match context.store.read(|state| state.assets.get(&id).cloned()) {
        Some(asset) => binary(&asset),
        None => respond(Err(asset_not_found(&id))),
    }
}

/// `GET /renditions/{id}`: the master whose rendition id this is.
pub(super) async fn rendition(State(context): Context, Path(id): Path<String>) -> Response {
    match context.store.read(|state| {
        state
            .assets
            .values()
            .find(|asset| asset.master_rendition_id == id)
            .cloned()
    }) {
        Some(asset) => binary(&asset),
        None => render_exception(
            StatusCode::NOT_FOUND,
            &format!("Rendition with id {id} does not exist."),
        ),
    }
}
