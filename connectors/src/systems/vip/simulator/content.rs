//! The VIP simulator's content: files uploaded to a package, new versions of a published
//! package, one delivery's revocation, and the recipient's download \[D\].
//!
//! - `POST /v1/packages/{id}/files` (multipart: a `file` part with its file name and type,
//!   an optional `asset` part of JSON `{source, source_id, version_id}` naming where the
//!   bytes come from) keeps the bytes, answers `201 {id, sha256, size, ...}` with the
//!   SHA-256 it computed, and, while the package is a draft, adds the file to its assets.
//!   A published package keeps the file aside until a version names it.
//! - `POST /v1/packages/{id}/versions {file_ids, note?}`: the package's assets become those
//!   files and its `version` goes up by one; when it is published, every delivery that
//!   still gives access becomes `superseded` and the new version is delivered to the
//!   recipients as publishing does. `201 {package, superseded, deliveries}`.
//! - `POST /v1/deliveries/{id}/revoke {reason?}`: one recipient loses access (`revoked`);
//!   revoking a revoked delivery changes nothing; a superseded or failed one is refused.
//! - `GET /v1/deliveries/{id}/download` with `X-Recipient-Id: <recipient>`: the files of
//!   the delivery with their bytes (base64), for that recipient only, refused with 410
//!   once the delivery is revoked, superseded or failed. The first download sets
//!   `downloaded_at` (a delivered delivery becomes `downloaded`) and sends
//!   `delivery.downloaded`; later ones count in `download_count`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Context, VipState, deliver, delivery_data, json_body, package_not_found, problem_value,
    render_problem, webhooks,
};
use crate::simulator::http::now_rfc3339;
use crate::simulator::{Change, SimContext, idempotency_key, reply};

/// The largest file the simulator accepts.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// The header naming the recipient who downloads.
pub const RECIPIENT_HEADER: &str = "x-recipient-id";

pub(super) fn routes() -> Router<std::sync::Arc<SimContext<VipState>>> {
    Router::new()
        .route(
            "/v1/packages/{id}/files",
            post(upload_file).layer(DefaultBodyLimit::max(MAX_FILE_BYTES + 1024 * 1024)),
        )
        .route("/v1/packages/{id}/versions", post(create_version))
        .route("/v1/deliveries/{id}/revoke", post(revoke_delivery))
        .route("/v1/deliveries/{id}/download", get(download))
}

/// Whether the recipient of `delivery` still has access to it.
pub(super) fn holds_access(delivery: &Value) -> bool {
    matches!(
        delivery["status"].as_str(),
        Some("queued" | "delivered" | "downloaded" | "acknowledged")
    )
}

/// An uploaded file, read before the change.
struct Upload {
    file_name: String,
    content_type: String,
    bytes: Bytes,
    asset: Value,
}

async fn read_upload(mut multipart: Multipart) -> Result<Upload, Response> {
    let malformed = |error: axum::extract::multipart::MultipartError| {
        render_problem(
            StatusCode::BAD_REQUEST,
            &format!("request body is not valid multipart/form-data: {error}"),
        )
    };
    let mut file = None;
    let mut asset = json!({});
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        match field.name().unwrap_or_default() {
            "file" => {
                let file_name = field.file_name().unwrap_or("file").to_owned();
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let bytes = field.bytes().await.map_err(malformed)?;
                file = Some((file_name, content_type, bytes));
            }
            "asset" => {
                let text = field.text().await.map_err(malformed)?;
                asset = match serde_json::from_str::<Value>(&text) {
                    Ok(value @ Value::Object(_)) => value,
                    _ => {
                        return Err(render_problem(
                            StatusCode::BAD_REQUEST,
                            "part asset must be a JSON object {source, source_id, version_id}",
                        ));
                    }
                };
            }
            _ => {}
        }
    }
    let Some((file_name, content_type, bytes)) = file else {
        return Err(render_problem(
            StatusCode::BAD_REQUEST,
            "multipart body has no part named file",
        ));
    };
    Ok(Upload {
        file_name,
        content_type,
        bytes,
        asset,
    })
}

async fn upload_file(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let Ok(multipart) = multipart else {
        return render_problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "files are uploaded as multipart/form-data",
        );
    };
    let upload = match read_upload(multipart).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    let sha256 = hex::encode(Sha256::digest(&upload.bytes));
    let path = format!("/v1/packages/{id}/files");
    let change = Change::new("file.uploaded", "POST", path, idempotency_key(&headers));
    reply(context.store.change(change, |state| {
        let status = state
            .packages
            .get(&id)
            .map(|package| package["status"].clone())
            .ok_or_else(|| package_not_found(&id))?;
        if status == "withdrawn" {
            return Err(problem_value(
                StatusCode::CONFLICT,
                &format!("package {id} was withdrawn"),
            ));
        }
        let file_id = state.new_id("file");
        let file = json!({
            "id": file_id, "package_id": id, "file_name": upload.file_name,
            "content_type": upload.content_type, "size": upload.bytes.len(), "sha256": sha256,
            "source": upload.asset.get("source"), "source_id": upload.asset.get("source_id"),
            "version_id": upload.asset.get("version_id"), "uploaded_at": now_rfc3339(true),
        });
        state.blobs.insert(
            sha256.clone(),
            base64::engine::general_purpose::STANDARD.encode(&upload.bytes),
        );
        let package = state.packages.get_mut(&id).expect("the package was read");
        push(&mut package["files"], file.clone());
        if status == "draft" {
            push(&mut package["assets"], asset_of(&file));
        }
        Ok((StatusCode::CREATED, file, Some(file_id)))
    }))
}

fn push(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(items) => items.push(item),
        None => *list = json!([item]),
    }
}

/// A package asset made of an uploaded file.
fn asset_of(file: &Value) -> Value {
    json!({"source": file["source"], "source_id": file["source_id"], "version_id": file["version_id"],
           "rendition": "original", "file_id": file["id"], "file_name": file["file_name"],
           "content_type": file["content_type"], "size": file["size"], "sha256": file["sha256"]})
}

async fn create_version(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let file_ids: Vec<String> = super::strings(&body["file_ids"]);
    if file_ids.is_empty() {
        let (status, mut problem) =
            problem_value(StatusCode::UNPROCESSABLE_ENTITY, "validation failed");
        problem["errors"] =
            json!([{"field": "file_ids", "message": "must name at least one uploaded file"}]);
        return (status, axum::Json(problem)).into_response();
    }
    let path = format!("/v1/packages/{id}/versions");
    let change = Change::new("package.versioned", "POST", path, idempotency_key(&headers));
    webhooks::change_and_emit(&context, change, |state, events| {
        let package = state
            .packages
            .get(&id)
            .cloned()
            .ok_or_else(|| package_not_found(&id))?;
        if package["status"] == "withdrawn" {
            return Err(problem_value(
                StatusCode::CONFLICT,
                &format!("package {id} was withdrawn"),
            ));
        }
        let files: BTreeMap<&str, &Value> = package["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|file| Some((file["id"].as_str()?, file)))
            .collect();
        let mut assets = Vec::new();
        for file_id in &file_ids {
            let file = files.get(file_id.as_str()).ok_or_else(|| {
                let (status, mut problem) =
                    problem_value(StatusCode::UNPROCESSABLE_ENTITY, "validation failed");
                problem["errors"] = json!([{"field": "file_ids",
                    "message": format!("{file_id} is not a file of package {id}")}]);
                (status, problem)
            })?;
            assets.push(asset_of(file));
        }
        let at = now_rfc3339(true);
        let version = package["version"].as_u64().unwrap_or(1) + 1;
        let published = package["status"] == "published";
        let mut superseded = Vec::new();
        if published {
            superseded = supersede(state, &id, version, &at, events);
        }
        let package = state.packages.get_mut(&id).expect("the package was read");
        package["assets"] = json!(assets);
        package["version"] = json!(version);
        package["version_note"] = body.get("note").cloned().unwrap_or(Value::Null);
        package["updated_at"] = json!(at);
        let package = package.clone();
        let deliveries = if published {
            deliver(state, &package, &at, events)
        } else {
            Vec::new()
        };
        Ok((
            StatusCode::CREATED,
            json!({"package": package, "superseded": superseded, "deliveries": deliveries}),
            Some(id.clone()),
        ))
    })
}

/// Marks every delivery of `package_id` that still gives access as superseded by
/// `version`, and returns them.
fn supersede(
    state: &mut VipState,
    package_id: &str,
    version: u64,
    at: &str,
    events: &mut Vec<Value>,
) -> Vec<Value> {
    let mut superseded = Vec::new();
    for delivery in state.deliveries.values_mut() {
        if delivery["package_id"] == package_id && holds_access(delivery) {
            delivery["status"] = json!("superseded");
            delivery["superseded_at"] = json!(at);
            delivery["superseded_by_version"] = json!(version);
            superseded.push(delivery.clone());
        }
    }
    for delivery in &superseded {
        let mut data = delivery_data(delivery);
        data["superseded_by_version"] = json!(version);
        data["superseded_at"] = json!(at);
        events.push(webhooks::event(state, "delivery.superseded", at, data));
    }
    superseded
}

async fn revoke_delivery(
    State(context): Context,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = if body.is_empty() {
        json!({})
    } else {
        match json_body(&body) {
            Ok(body) => body,
            Err(response) => return response,
        }
    };
    let path = format!("/v1/deliveries/{id}/revoke");
    let change = Change::new("delivery.revoked", "POST", path, idempotency_key(&headers));
    webhooks::change_and_emit(&context, change, |state, events| {
        let delivery = state.deliveries.get_mut(&id).ok_or_else(|| {
            problem_value(StatusCode::NOT_FOUND, &format!("delivery {id} not found"))
        })?;
        if delivery["status"] == "revoked" {
            return Ok((StatusCode::OK, delivery.clone(), Some(id.clone())));
        }
        if !holds_access(delivery) {
            return Err(problem_value(
                StatusCode::CONFLICT,
                &format!(
                    "delivery {id} was {}; there is no access to revoke",
                    delivery["status"].as_str().unwrap_or("closed")
                ),
            ));
        }
        let at = now_rfc3339(true);
        let reason = body.get("reason").cloned().unwrap_or(Value::Null);
        delivery["status"] = json!("revoked");
        delivery["revoked_at"] = json!(at);
        delivery["revoke_reason"] = reason.clone();
        let delivery = delivery.clone();
        let mut data = delivery_data(&delivery);
        data["reason"] = reason;
        data["revoked_at"] = json!(at);
        events.push(webhooks::event(state, "delivery.revoked", &at, data));
        Ok((StatusCode::OK, delivery, Some(id.clone())))
    })
}

async fn download(State(context): Context, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(recipient) = headers
        .get(RECIPIENT_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
    else {
        return render_problem(
            StatusCode::BAD_REQUEST,
            "a download names its recipient in X-Recipient-Id",
        );
    };
    let path = format!("/v1/deliveries/{id}/download");
    let change = Change::new("delivery.downloaded", "GET", path, None);
    webhooks::change_and_emit(&context, change, |state, events| {
        let delivery = state.deliveries.get(&id).cloned().ok_or_else(|| {
            problem_value(StatusCode::NOT_FOUND, &format!("delivery {id} not found"))
        })?;
        if delivery["recipient_id"] != recipient.as_str() {
            return Err(problem_value(
                StatusCode::FORBIDDEN,
                &format!("delivery {id} is not addressed to recipient {recipient}"),
            ));
        }
        if !holds_access(&delivery) {
            return Err(problem_value(
                StatusCode::GONE,
                &format!(
                    "delivery {id} was {}",
                    delivery["status"].as_str().unwrap_or("closed")
                ),
            ));
        }
        let files = files_of(state, &delivery);
        let at = now_rfc3339(true);
        let first = delivery["downloaded_at"].is_null();
        let stored = state
            .deliveries
            .get_mut(&id)
            .expect("the delivery was read");
        stored["download_count"] = json!(stored["download_count"].as_u64().unwrap_or(0) + 1);
        if first {
            stored["downloaded_at"] = json!(at);
            if stored["status"] == "delivered" {
                stored["status"] = json!("downloaded");
            }
            let mut data = delivery_data(stored);
            data["downloaded_at"] = json!(at);
            events.push(webhooks::event(state, "delivery.downloaded", &at, data));
        }
        let body = json!({"delivery_id": id, "package_id": delivery["package_id"],
                          "version": delivery["version"], "files": files});
        Ok((StatusCode::OK, body, Some(id.clone())))
    })
}

/// The assets of the delivery's package, with the bytes of the uploaded ones.
fn files_of(state: &VipState, delivery: &Value) -> Vec<Value> {
    let package = delivery["package_id"]
        .as_str()
        .and_then(|id| state.packages.get(id));
    package
        .and_then(|package| package["assets"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|mut asset| {
            if let Some(bytes) = asset["sha256"]
                .as_str()
                .and_then(|sha256| state.blobs.get(sha256))
            {
                asset["content_base64"] = json!(bytes);
            }
            asset
        })
        .collect()
}
