//! Content by digest for OTMM: `otmm.fetch_content` streams a version's bytes into the
//! content store, and the `versions` of `otmm.get_asset` report each version's digest.
//!
//! Every OTMM version is an asset of its own (its own `asset_id`, `version` 1, 2, …, the
//! first version's id as `original_asset_id`) \[V\]; the versions are listed by
//! `GET /assets/{id}/versions` \[I\]. An [`Artifact`] names the asset by its
//! `original_asset_id`, which stays the same across versions, so that approvals, the
//! ledger and rights windows of one asset meet whichever version's id a workflow held.
//!
//! The master is downloaded from `GET /assets/{id}/contents` \[V\], other renditions from
//! the `url` of `rendition_content.<rendition>_content` \[I\], with the connector's session.
//! The digest is `master_content_info.content_checksum` \[V: the field; its algorithm is
//! unpublished\]: it is taken for a SHA-256 only when it has that form (64 hex digits),
//! and then checked against the bytes received; any other checksum is reported as unknown
//! (`sha256: null`) and not checked.

use serde_json::{Value, json};

use super::{NAME, OtmmConnector, metadata_values};
use crate::connector::{ActionSpec, Effects, Error, Result};
use crate::content::Artifact;
use crate::effects::ObservedRights;
use crate::fetch::{self, FetchArgs, ORIGINAL, VersionArg};
use crate::rest::{
    Download, Request, parse_arguments, required, segment, sha256_digest, store_download,
};
use crate::schema::{action, object};

/// `version` of an OTMM version (an integer) as text.
fn version_text(version: &Value) -> Option<String> {
    match version {
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) => Some(text.clone()),
        _ => None,
    }
}

/// The version `wanted` names among `versions`; the latest one when none is named.
fn choose<'a>(versions: &'a [Value], wanted: Option<&VersionArg>) -> Option<&'a Value> {
    match wanted {
        None => versions
            .iter()
            .find(|version| version["latest_version"] == true)
            .or_else(|| {
                versions
                    .iter()
                    .max_by_key(|version| version["version"].as_u64())
            }),
        Some(VersionArg::Number(number)) => versions
            .iter()
            .find(|version| version["version"].as_u64() == Some(*number)),
        Some(VersionArg::Text(text)) => versions.iter().find(|version| {
            version["asset_id"] == text.as_str()
                || version_text(&version["version"]).as_deref() == Some(text.as_str())
        }),
    }
}

/// One entry of `get_asset`'s `versions`: the version's number, digest, size, file name
/// and import time, each `null` when OTMM does not give it.
pub(super) fn version_entry(version: &Value) -> Option<Value> {
    let master = &version["master_content_info"];
    let text = |value: &Value| value.as_str().map(str::to_owned);
    Some(json!({
        "version": version_text(&version["version"])?,
        "sha256": sha256_digest(master["content_checksum"].as_str()),
        "size": master["content_size"].as_u64().or_else(|| version["content_size"].as_u64()),
        "file_name": text(&master["name"]).or_else(|| text(&version["name"])),
        "created_at": text(&version["date_imported"]),
        "asset_id": version["asset_id"], "latest_version": version["latest_version"],
        "date_last_updated": version["date_last_updated"],
    }))
}

/// The JSON Schema of one entry of `get_asset`'s `versions`.
pub(super) fn version_schema() -> Value {
    let text = json!({"type": ["string", "null"]});
    json!({"type": "object", "required": ["version", "sha256", "size", "file_name", "created_at"],
        "properties": {"version": {"type": "string"}, "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": ["integer", "null"]}, "file_name": text, "created_at": text,
            "asset_id": {"type": "string"}, "latest_version": {"type": ["boolean", "null"]}, "date_last_updated": text}})
}

/// The spec of `otmm.fetch_content`.
pub(super) fn fetch_content_spec() -> ActionSpec {
    action(
        "fetch_content",
        "Fetch a version's bytes (the latest version's master unless named) into the content store; outputs the stored artifact and the asset's rights window.",
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

impl OtmmConnector {
    /// Every version of the asset `asset_id` is a version of, oldest first.
    pub(super) async fn versions(&self, asset_id: &str) -> Result<Vec<Value>> {
        let answer = self
            .client
            .call(&Request::get(format!(
                "/assets/{}/versions",
                segment(asset_id)
            )))
            .await?;
        Ok(answer["assets_resource"]["asset_list"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// `otmm.fetch_content`.
    pub(super) async fn fetch_content(&self, arguments: &Value) -> Result<Value> {
        let args: FetchArgs = parse_arguments(NAME, "fetch_content", arguments)?;
        let versions = self.versions(&args.asset_id).await?;
        let chosen = choose(&versions, args.version.as_ref()).ok_or_else(|| {
            VersionArg::not_found(
                args.version.as_ref(),
                &format!("otmm asset {}", args.asset_id),
                "latest",
            )
        })?;
        let version_id = required(chosen, "/asset_id", "otmm version")?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let asset = self.fetch_asset(&version_id).await?;
        let asset_id = asset["original_asset_id"]
            .as_str()
            .unwrap_or(&version_id)
            .to_owned();
        let version = version_text(&asset["version"]).unwrap_or_else(|| version_id.clone());
        let what = format!(
            "otmm asset {asset_id} version {version} ({})",
            args.rendition
        );
        let master = &asset["master_content_info"];
        let (request, expected, info) = if args.rendition == ORIGINAL {
            let request = Request::get(format!("/assets/{}/contents", segment(&version_id)))
                .query("disposition", "attachment");
            let expected = sha256_digest(master["content_checksum"].as_str());
            (request, expected, master)
        } else {
            let info = &asset["rendition_content"][format!("{}_content", args.rendition)];
            (self.rendition_request(info, &what)?, None, info)
        };
        let response = self.client.open(&request.binary()).await?;
        let file_name = info["name"]
            .as_str()
            .or_else(|| asset["name"].as_str())
            .unwrap_or(&version_id);
        let content_type = info["mime_type"]
            .as_str()
            .or_else(|| asset["mime_type"].as_str())
            .unwrap_or_default();
        let download = Download {
            what: &what,
            expected_sha256: expected.as_deref(),
            content_type,
            file_name,
        };
        let content = store_download(response, &self.content, download).await?;
        let window = self.fields.rights(&metadata_values(&asset));
        Ok(fetch::output(NAME, asset_id, version, content, window))
    }

    /// The request for a rendition other than the master, from its `url`: a path under
    /// the connector's base URL.
    fn rendition_request(&self, info: &Value, what: &str) -> Result<Request> {
        let Some(url) = info["url"].as_str() else {
            return Err(Error::permanent(
                "rendition_not_found",
                format!("{what}: otmm gives no such rendition"),
            ));
        };
        let base = reqwest::Url::parse(&self.base_url).map_err(|error| {
            Error::permanent("invalid_configuration", format!("otmm base_url: {error}"))
        })?;
        let path = base
            .join(url)
            .ok()
            .and_then(|joined| {
                joined
                    .path()
                    .strip_prefix(base.path().trim_end_matches('/'))
                    .map(str::to_owned)
            })
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_response",
                    format!("{what}: the rendition's url is not under the otmm base url"),
                )
            })?;
        Ok(Request::get(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_chosen_by_number_id_or_latest() {
        let versions = [
            json!({"asset_id": "a1", "version": 1, "latest_version": false}),
            json!({"asset_id": "a2", "version": 2, "latest_version": true}),
        ];
        let id = |wanted: Option<&VersionArg>| {
            choose(&versions, wanted).map(|version| version["asset_id"].clone())
        };
        assert_eq!(id(None), Some(json!("a2")));
        assert_eq!(id(Some(&VersionArg::Number(1))), Some(json!("a1")));
        assert_eq!(id(Some(&VersionArg::Text("1".into()))), Some(json!("a1")));
        assert_eq!(id(Some(&VersionArg::Text("a2".into()))), Some(json!("a2")));
        assert_eq!(id(Some(&VersionArg::Number(3))), None);
    }

    #[test]
    fn a_checksum_is_a_sha256_only_in_that_form() {
        let entry = version_entry(&json!({"asset_id": "a1", "version": 1,
            "master_content_info": {"content_checksum": "0cc175b9c0f1b6a831c399e269772661", "content_size": 4}}))
        .unwrap();
        assert_eq!(
            entry["sha256"],
            Value::Null,
            "an MD5 is not taken for a SHA-256"
        );
        assert_eq!(entry["version"], "1");
        assert_eq!(entry["created_at"], Value::Null);
    }
}
