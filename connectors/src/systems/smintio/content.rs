//! Smint.io content by digest: `smintio.fetch_content` streams a binary of a licensed
//! asset into the content store, and `smintio.get_asset` lists every binary as a version.
//!
//! An asset (an LPT) has binaries, each of a `binary_type` with a `version` (above 1: a
//! binary update) \[V\]; the rendition is the binary type (`original` is `master`) and the
//! version the binary's, the latest by default. The binary's `download_url` is signed and
//! valid for at most an hour \[V\]: it is asked for right before the download, fetched
//! without our token, and never returned or logged. Smint.io exposes no digest, size or
//! date of a binary \[V\], so the versions carry `null` there: unknown, never guessed.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{NAME, SmintioConnector, rights_window};
use crate::connector::{Error, Result};
use crate::content::ContentRef;
use crate::fetch;
use crate::http::{self, Redactor};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FetchContentArgs {
    asset_id: String,
    version: Option<Value>,
    rendition: Option<String>,
}

/// A binary's `version`, as text.
fn version_of(binary: &Value) -> Option<String> {
    match &binary["version"] {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The binary type a rendition names: `original` is Smint.io's `master`.
fn binary_type(rendition: &str) -> &str {
    if rendition == "original" {
        "master"
    } else {
        rendition
    }
}

/// Every binary as a version of the asset, in Smint.io's order.
pub(super) fn versions(binaries: &[Value]) -> Vec<Value> {
    binaries
        .iter()
        .map(|binary| {
            json!({
                "version": version_of(binary), "sha256": null, "size": null,
                "file_name": binary.get("recommended_file_name").cloned().unwrap_or(Value::Null),
                "created_at": null, "binary_uuid": binary["uuid"].clone(),
                "binary_type": binary["binary_type"].clone(),
            })
        })
        .collect()
}

/// The latest binary of `kind` (the highest `version`).
pub(super) fn latest<'a>(binaries: &'a [Value], kind: &str) -> Option<&'a Value> {
    binaries
        .iter()
        .filter(|binary| binary["binary_type"] == kind)
        .max_by_key(|binary| binary["version"].as_u64().unwrap_or(0))
}

impl SmintioConnector {
    /// `fetch_content`: one binary's bytes into the content store.
    pub(super) async fn fetch_content(&self, args: FetchContentArgs) -> Result<Value> {
        let wanted = fetch::version_text("smintio.fetch_content", args.version.as_ref())?;
        let rendition = args.rendition.as_deref().unwrap_or("original");
        let kind = binary_type(rendition);
        let lpt = self.find(&args.asset_id).await?;
        let cart = lpt["cart_purchase_transaction_uuid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // Asked for now, right before the download: the signed URL lives an hour at most.
        let binaries = self.binaries(&cart, &args.asset_id).await?;
        let binary = match &wanted {
            None => latest(&binaries, kind),
            Some(version) => binaries.iter().find(|binary| {
                binary["binary_type"] == kind && version_of(binary).as_ref() == Some(version)
            }),
        }
        .ok_or_else(|| {
            let known: Vec<String> = binaries
                .iter()
                .filter(|binary| binary["binary_type"] == kind)
                .filter_map(version_of)
                .collect();
            Error::permanent(
                "version_not_found",
                format!(
                    "smintio asset {} has no {kind} binary{} (versions: {})",
                    args.asset_id,
                    wanted
                        .as_deref()
                        .map(|version| format!(" version {version}"))
                        .unwrap_or_default(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
        let version = version_of(binary).unwrap_or_else(|| "1".to_owned());
        let file_name = binary["recommended_file_name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}-{kind}", args.asset_id));
        let url = binary["download_url"].as_str().ok_or_else(|| {
            Error::permanent(
                "invalid_response",
                format!(
                    "smintio asset {}: binary {} has no download_url",
                    args.asset_id, binary["uuid"]
                ),
            )
        })?;
        let reference = self.stream(url, &file_name).await?;
        let window = rights_window(&lpt);
        Ok(fetch::output(
            NAME,
            args.asset_id,
            version,
            reference,
            window,
        ))
    }

    /// Streams the signed `url` into the store. The URL (and each of its query values) is
    /// scrubbed from every error; transport errors name the host only.
    async fn stream(&self, url: &str, file_name: &str) -> Result<ContentRef> {
        let mut redactor = Redactor::new();
        redactor.add(url);
        if let Ok(parsed) = reqwest::Url::parse(url) {
            for (_, value) in parsed.query_pairs() {
                redactor.add(&value);
            }
        }
        let mut response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|error| redactor.redact_error(Error::from_reqwest(&error)))?;
        if !response.status().is_success() {
            return Err(http::error_for_response(response, &redactor).await);
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        let mut writer = self.content.writer().await?;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| redactor.redact_error(Error::from_reqwest(&error)))?
        {
            writer.write(&chunk).await?;
        }
        writer.finish(&content_type, file_name).await
    }
}

/// `fetch_content`'s argument schema: closed.
pub(super) fn fetch_content_arguments() -> Value {
    crate::schema::object(
        &["asset_id"],
        json!({
            "asset_id": {"type": "string", "minLength": 1},
            "version": {"type": ["string", "integer"], "minLength": 1, "minimum": 1},
            "rendition": {"type": "string", "minLength": 1},
        }),
    )
}
