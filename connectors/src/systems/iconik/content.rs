//! Content by digest for iconik: `iconik.fetch_content` streams a version's original file
//! into the content store, and the `versions` of `iconik.get_asset` report each version's
//! digest.
//!
//! An asset's versions are listed in the asset (`versions[]`: `id`, `status`,
//! `date_created`) \[V\]; its files by `GET /files/v1/assets/{id}/files/` (cursor
//! `last_id`, `per_page`), each with its `version_id`, `size`, `name`/`original_name`,
//! `status` and `checksum` \[V: the fields\]. A version's bytes are its first `CLOSED` file.
//! They are downloaded over iconik's own path: `GET …/files/{file_id}/download_url/`
//! gives a signed URL \[V\], fetched just before the download, sent nowhere else (no
//! iconik header goes to the storage host), and never returned or logged.
//! The digest is the file's `checksum` \[V: the field; its algorithm is unpublished\]:
//! taken for a SHA-256 only when it has that form (64 hex digits), and then checked
//! against the bytes received; any other checksum is reported as unknown (`sha256:
//! null`) and not checked. Only the `original` rendition is fetched: proxies are
//! renditions iconik makes for viewing, not the approved file.

use serde_json::{Value, json};

use super::{IconikConnector, NAME};
use crate::connector::{ActionSpec, Effects, Error, Result};
use crate::content::Artifact;
use crate::effects::ObservedRights;
use crate::fetch::{self, FetchArgs, ORIGINAL, VersionArg};
use crate::rest::{
    Download, Request, parse_arguments, required, segment, sha256_digest, store_download,
};
use crate::schema::{action, object};

/// Files asked for per page.
const FILES_PER_PAGE: u32 = 100;

/// The most file pages read for one asset, against a system that never ends its cursor.
const MAX_FILE_PAGES: usize = 100;

/// The asset's versions, oldest first (by `date_created`, then as listed).
fn by_creation(asset: &Value) -> Vec<&Value> {
    let mut versions: Vec<&Value> = asset["versions"].as_array().into_iter().flatten().collect();
    versions.sort_by(|a, b| {
        a["date_created"]
            .as_str()
            .unwrap_or_default()
            .cmp(b["date_created"].as_str().unwrap_or_default())
    });
    versions
}

/// The version `wanted` names; when none is named, the newest `ACTIVE` one (a version
/// still `IN_PROGRESS` has no file yet).
fn choose<'a>(asset: &'a Value, wanted: Option<&VersionArg>) -> Option<&'a Value> {
    let versions = by_creation(asset);
    match wanted {
        None => versions
            .into_iter()
            .rev()
            .find(|version| version["status"] == "ACTIVE"),
        Some(VersionArg::Number(number)) => usize::try_from(*number)
            .ok()
            .and_then(|number| number.checked_sub(1))
            .and_then(|index| versions.get(index).copied()),
        Some(VersionArg::Text(text)) => versions
            .into_iter()
            .find(|version| version["id"] == text.as_str()),
    }
}

/// The file holding `version_id`'s bytes: its first `CLOSED` file.
fn file_of<'a>(files: &'a [Value], version_id: &str) -> Option<&'a Value> {
    files
        .iter()
        .find(|file| file["version_id"] == version_id && file["status"] == "CLOSED")
}

fn file_name(file: &Value) -> Option<&str> {
    file["original_name"]
        .as_str()
        .or_else(|| file["name"].as_str())
}

/// `get_asset`'s `versions`: each version with the digest, size and name of its file,
/// `null` where iconik gives none.
pub(super) fn version_entries(asset: &Value, files: &[Value]) -> Vec<Value> {
    by_creation(asset)
        .into_iter()
        .filter_map(|version| {
            let id = version["id"].as_str()?;
            let file = file_of(files, id);
            Some(json!({
                "version": id,
                "sha256": sha256_digest(file.and_then(|file| file["checksum"].as_str())),
                "size": file.and_then(|file| file["size"].as_u64()),
                "file_name": file.and_then(file_name),
                "created_at": version["date_created"].as_str(),
                "status": version["status"].as_str(),
            }))
        })
        .collect()
}

/// The JSON Schema of one entry of `get_asset`'s `versions`.
pub(super) fn version_schema() -> Value {
    let text = json!({"type": ["string", "null"]});
    json!({"type": "object", "required": ["version", "sha256", "size", "file_name", "created_at"],
        "properties": {"version": {"type": "string"}, "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": ["integer", "null"]}, "file_name": text, "created_at": text, "status": text}})
}

/// The spec of `iconik.fetch_content`.
pub(super) fn fetch_content_spec() -> ActionSpec {
    action(
        "fetch_content",
        "Fetch a version's original file (the newest active version unless named) into the content store; outputs the stored artifact and the asset's rights window.",
        object(
            &["asset_id"],
            json!({"asset_id": {"type": "string", "minLength": 1},
                   "version": {"type": ["string", "integer"], "minLength": 1, "minimum": 1},
                   "rendition": {"type": "string", "minLength": 1}}),
        ),
        object(
            &["content", "observed_rights"],
            json!({"content": Artifact::schema(), "observed_rights": ObservedRights::array_schema()}),
        ),
    )
    .with_effects(Effects {
        rights: true,
        ..Effects::default()
    })
}

impl IconikConnector {
    /// Every file of the asset, page after page of the `last_id` cursor.
    pub(super) async fn files(&self, asset_id: &str) -> Result<Vec<Value>> {
        let path = format!("/files/v1/assets/{}/files/", segment(asset_id));
        let mut files: Vec<Value> = Vec::new();
        for _ in 0..MAX_FILE_PAGES {
            let last_id = files.last().and_then(|file| file["id"].as_str());
            let answer = self
                .client
                .call(
                    &Request::get(&path)
                        .query("per_page", FILES_PER_PAGE)
                        .query("generate_signed_url", "false")
                        .query_opt("last_id", last_id),
                )
                .await?;
            let page = answer["objects"].as_array().cloned().unwrap_or_default();
            let more = answer["next_url"].is_string() && !page.is_empty();
            files.extend(page);
            if !more {
                return Ok(files);
            }
        }
        Err(Error::permanent(
            "invalid_response",
            format!("iconik asset {asset_id}: more than {MAX_FILE_PAGES} pages of files"),
        ))
    }

    /// `iconik.fetch_content`.
    pub(super) async fn fetch_content(&self, arguments: &Value) -> Result<Value> {
        let args: FetchArgs = parse_arguments(NAME, "fetch_content", arguments)?;
        let asset = self
            .client
            .call(&Request::get(format!(
                "/assets/v1/assets/{}/",
                segment(&args.asset_id)
            )))
            .await?;
        let asset_id = required(&asset, "/id", "iconik asset")?
            .as_str()
            .unwrap_or(&args.asset_id)
            .to_owned();
        let version = choose(&asset, args.version.as_ref()).ok_or_else(|| {
            VersionArg::not_found(
                args.version.as_ref(),
                &format!("iconik asset {asset_id}"),
                "active",
            )
        })?;
        let version_id = version["id"].as_str().unwrap_or_default().to_owned();
        let what = format!(
            "iconik asset {asset_id} version {version_id} ({})",
            args.rendition
        );
        if args.rendition != ORIGINAL {
            return Err(Error::permanent(
                "rendition_not_found",
                format!("{what}: iconik's connector fetches the original file only"),
            ));
        }
        let files = self.files(&asset_id).await?;
        let file = file_of(&files, &version_id).ok_or_else(|| {
            Error::permanent(
                "no_content",
                format!("{what}: the version has no closed file"),
            )
        })?;
        let file_id = required(file, "/id", "iconik file")?
            .as_str()
            .unwrap_or_default();
        let link = self
            .client
            .call(&Request::get(format!(
                "/files/v1/assets/{}/files/{}/download_url/",
                segment(&asset_id),
                segment(file_id)
            )))
            .await?;
        let url = required(&link, "/url", "iconik download url")?
            .as_str()
            .ok_or_else(|| {
                Error::permanent("invalid_response", "iconik download url: url is not text")
            })?;
        let response = self.client.open_signed(url).await?;
        let expected = sha256_digest(file["checksum"].as_str());
        let download = Download {
            what: &what,
            expected_sha256: expected.as_deref(),
            content_type: "",
            file_name: file_name(file).unwrap_or(file_id),
        };
        let content = store_download(response, &self.content, download).await?;
        let metadata = self.metadata(&asset_id, &self.view_id).await?;
        let window = self.rights(&metadata);
        Ok(fetch::output(NAME, asset_id, version_id, content, window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_chosen_by_id_number_or_newest_active() {
        let asset = json!({"versions": [
            {"id": "v2", "status": "ACTIVE", "date_created": "2026-02-01T00:00:00+00:00"},
            {"id": "v1", "status": "ACTIVE", "date_created": "2026-01-01T00:00:00+00:00"},
            {"id": "v3", "status": "IN_PROGRESS", "date_created": "2026-03-01T00:00:00+00:00"},
        ]});
        let id = |wanted: Option<&VersionArg>| {
            choose(&asset, wanted).map(|version| version["id"].clone())
        };
        assert_eq!(id(None), Some(json!("v2")), "v3 has no file yet");
        assert_eq!(id(Some(&VersionArg::Number(1))), Some(json!("v1")));
        assert_eq!(id(Some(&VersionArg::Number(3))), Some(json!("v3")));
        assert_eq!(id(Some(&VersionArg::Number(4))), None);
        assert_eq!(id(Some(&VersionArg::Text("v1".into()))), Some(json!("v1")));
        let entries = version_entries(&asset, &[]);
        assert_eq!(entries[0]["version"], "v1");
        assert_eq!(entries[0]["sha256"], Value::Null, "no file: digest unknown");
    }
}
