//! Canto content by digest: `canto.fetch_content` streams one version's bytes from the
//! `api_binary` download (Bearer token, never a link handed out) into the content store,
//! and `canto.get_asset` lists every version.
//!
//! The current version is the content's `url.download` \[V\]; an older one is the
//! `uri.download` of its `versionHistory` entry \[V\], refused when it is the same as the
//! current one's (it would bring the current bytes under an older version's name). Canto
//! exposes one digest, the content's `md5` of its current version \[V\]: fetching the
//! current version checks it, and a mismatch is `content_digest_mismatch`. It exposes no
//! SHA-256, so the versions `get_asset` lists carry `sha256: null`.

use md5::Digest as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CantoConnector, NAME, SCHEMES, canto_instant};
use crate::connector::{Error, Result};
use crate::content::ContentRef;
use crate::fetch;
use crate::rest::Request;

/// The renditions `fetch_content` reads: the original file only.
pub(super) const RENDITIONS: [&str; 1] = ["original"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FetchContentArgs {
    asset_id: String,
    scheme: Option<String>,
    version: Option<Value>,
    rendition: Option<String>,
}

fn version_of(entry: &Value) -> Option<String> {
    match &entry["version"] {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The current version: the `versionHistory` entry marked `currentVersion`, else the last.
fn current_version(content: &Value) -> Option<String> {
    let history = content["versionHistory"].as_array()?;
    history
        .iter()
        .find(|entry| entry["currentVersion"] == true)
        .or_else(|| history.last())
        .and_then(version_of)
}

/// Every version of `content` as `get_asset` lists it, oldest first: the size, file name
/// and `md5` known for the current version only, no SHA-256 (Canto has none).
pub(super) fn versions(content: &Value) -> Vec<Value> {
    let current = current_version(content);
    content["versionHistory"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let version = version_of(entry);
            let is_current = version.is_some() && version == current;
            let size = content["size"]
                .as_str()
                .and_then(|size| size.parse::<u64>().ok())
                .or_else(|| content["size"].as_u64());
            json!({
                "version": version,
                "sha256": null,
                "md5": if is_current { content.get("md5").cloned().unwrap_or(Value::Null) } else { Value::Null },
                "size": if is_current { json!(size) } else { Value::Null },
                "file_name": if is_current { content["name"].clone() } else { Value::Null },
                "created_at": entry["created"].as_str()
                    .and_then(|created| canto_instant(created, false))
                    .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "current": is_current,
                "comment": entry.get("comment").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

impl CantoConnector {
    /// The content `asset_id` in `scheme`, or in whichever scheme holds it: Canto ids are
    /// unique across schemes, so without one each scheme is asked in turn.
    pub(super) async fn locate(&self, scheme: Option<&str>, asset_id: &str) -> Result<Value> {
        if let Some(scheme) = scheme {
            return self.content(scheme, asset_id).await;
        }
        for scheme in SCHEMES {
            match self.content(scheme, asset_id).await {
                Ok(content) => return Ok(content),
                Err(error) if error.code() == "not_found" => {}
                Err(error) => return Err(error),
            }
        }
        Err(Error::permanent(
            "not_found",
            format!(
                "canto has no content {asset_id} in any scheme ({})",
                SCHEMES.join(", ")
            ),
        ))
    }

    /// `fetch_content`: one version's bytes into the content store.
    pub(super) async fn fetch_content(&self, args: FetchContentArgs) -> Result<Value> {
        let rendition = args.rendition.as_deref().unwrap_or("original");
        if !RENDITIONS.contains(&rendition) {
            return Err(Error::invalid_arguments(format!(
                "canto.fetch_content: rendition {rendition:?} is not one of {}",
                RENDITIONS.join(", ")
            )));
        }
        let wanted = fetch::version_text("canto.fetch_content", args.version.as_ref())?;
        let content = self.locate(args.scheme.as_deref(), &args.asset_id).await?;
        let current = current_version(&content);
        let version = wanted.clone().or_else(|| current.clone()).ok_or_else(|| {
            Error::permanent(
                "invalid_response",
                format!("canto content {} has no version history", args.asset_id),
            )
        })?;
        let is_current = current.as_deref() == Some(version.as_str());
        let path = self.download_path(&content, &args.asset_id, &version, is_current)?;
        // The MD5 Canto gives is its current version's; it says nothing of older ones.
        let expected_md5 = content["md5"]
            .as_str()
            .filter(|_| is_current)
            .map(str::to_ascii_lowercase);
        let file_name = content["name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| args.asset_id.clone());
        let reference = self
            .stream(&path, &file_name, expected_md5.as_deref(), &args.asset_id)
            .await?;
        let window = self.rights(&content);
        Ok(fetch::output(
            NAME,
            args.asset_id,
            version,
            reference,
            window,
        ))
    }

    /// The `api_binary` path of `version`: the content's `url.download` for the current
    /// one, its history entry's `uri.download` otherwise. Only paths on the tenant are
    /// followed: the Bearer token goes nowhere else.
    fn download_path(
        &self,
        content: &Value,
        asset_id: &str,
        version: &str,
        is_current: bool,
    ) -> Result<String> {
        let current_url = content["url"]["download"].as_str();
        let url = if is_current {
            current_url
        } else {
            let entry = content["versionHistory"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|entry| version_of(entry).as_deref() == Some(version))
                .ok_or_else(|| {
                    Error::permanent(
                        "version_not_found",
                        format!("canto content {asset_id} has no version {version}"),
                    )
                })?;
            let url = entry["uri"]["download"].as_str();
            if url.is_none() || url == current_url {
                return Err(Error::permanent(
                    "version_not_available",
                    format!(
                        "canto content {asset_id}: version {version} has no download of its own"
                    ),
                ));
            }
            url
        };
        let url = url.ok_or_else(|| {
            Error::permanent(
                "invalid_response",
                format!("canto content {asset_id} has no url.download"),
            )
        })?;
        let base = self.client.url("");
        let path = url.strip_prefix(base.as_str()).unwrap_or(url);
        if !path.starts_with("/api_binary/") {
            return Err(Error::permanent(
                "invalid_response",
                format!(
                    "canto content {asset_id}: the download of version {version} is not on the tenant's api_binary"
                ),
            ));
        }
        Ok(path.to_owned())
    }

    /// Streams the download at `path` into the store, checking `expected_md5` when given.
    async fn stream(
        &self,
        path: &str,
        file_name: &str,
        expected_md5: Option<&str>,
        asset_id: &str,
    ) -> Result<ContentRef> {
        let mut response = self.client.open(&Request::get(path)).await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        let mut writer = self.content.writer().await?;
        let mut md5 = md5::Md5::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| {
            self.client
                .redactor()
                .redact_error(Error::from_reqwest(&error))
        })? {
            md5.update(&chunk);
            writer.write(&chunk).await?;
        }
        let actual = hex::encode(md5.finalize());
        if let Some(expected) = expected_md5
            && expected != actual
        {
            // Dropping the writer removes the partial object: nothing is kept.
            return Err(Error::permanent(
                "content_digest_mismatch",
                format!(
                    "canto content {asset_id}: Canto gives md5 {expected}, the bytes received hash to md5 {actual}"
                ),
            ));
        }
        writer.finish(&content_type, file_name).await
    }
}

/// `fetch_content`'s argument schema: closed; `scheme` saves the look-up across schemes.
pub(super) fn fetch_content_arguments(scheme: Value) -> Value {
    crate::schema::object(
        &["asset_id"],
        json!({
            "asset_id": {"type": "string", "minLength": 1},
            "scheme": scheme,
            "version": {"type": ["string", "integer"], "minLength": 1, "minimum": 1},
            "rendition": {"type": "string", "enum": RENDITIONS},
        }),
    )
}
