//! Content through VIP: `vip.publish_content` and `vip.replace_package_content` give
//! recipients stored content objects ([`Artifact`]s), never links.
//!
//! Each artifact's bytes are read from the connector's content store (which checks them
//! against their digest) and uploaded with `POST /v1/packages/{id}/files` (multipart: the
//! file and an `asset` part naming its system, id and version); the platform answers with
//! the SHA-256 and size it received, which must be the artifact's, else the action fails
//! permanently with `content_mismatch` before anything is published. Then
//! `publish_content` publishes the package (created first from `title`, `recipients`,
//! `rights` and `metadata` when no `package_id` is given) and `replace_package_content`
//! posts a new version made of the uploaded files (`POST /v1/packages/{id}/versions`),
//! which supersedes the recipients' earlier deliveries.
//!
//! Every request carries a key derived from the action's key (`<key>:package`,
//! `<key>:file:<n>`, `<key>:publish`, `<key>:version`), so a retried attempt resumes where
//! the last one stopped and nothing takes effect twice.
//!
//! The output's `ledger` holds a `delivered` change per delivery and artifact (partner: the
//! recipient id, reference: the package id, receipt: the delivery id), a `failed` status
//! for a delivery the platform could not make, and for a new version a `superseded` status
//! per earlier delivery; `observed_rights` holds the package's rights window for each asset
//! when the package has one.

use std::collections::BTreeSet;

use axum::body::Bytes;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{IDEMPOTENCY_HEADER, NAME, VipConnector, instant};
use crate::asset::RightsWindow;
use crate::connector::{Error, Result};
use crate::content::Artifact;
use crate::effects::{Delivery, DeliveryStatus, LedgerChange, ObservedRights, StatusChange};
use crate::rest::{Part, Request, parse_arguments, required, segment};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishContentArgs {
    package_id: Option<String>,
    title: Option<String>,
    metadata: Option<Value>,
    rights: Option<Value>,
    recipients: Option<Value>,
    content: Vec<Artifact>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceContentArgs {
    package_id: String,
    content: Vec<Artifact>,
    note: Option<String>,
}

impl VipConnector {
    /// `vip.publish_content`.
    pub(super) async fn publish_content(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: PublishContentArgs = parse_arguments(NAME, "publish_content", arguments)?;
        self.check_content(&args.content, "publish_content").await?;
        let package_id = match (&args.package_id, &args.title) {
            (Some(package_id), None)
                if args.recipients.is_none()
                    && args.rights.is_none()
                    && args.metadata.is_none() =>
            {
                package_id.clone()
            }
            (None, Some(title)) => self.create_for_content(title, &args, key).await?,
            _ => {
                return Err(Error::invalid_arguments(
                    "vip.publish_content: give either package_id (a draft package) or title with recipients, rights and metadata for a new one",
                ));
            }
        };
        let files = self.upload_all(&package_id, &args.content, key).await?;
        let path = format!("/v1/packages/{}/publish", segment(&package_id));
        let answer = self
            .client
            .call_idempotent(Method::POST, path, json!({}), &format!("{key}:publish"))
            .await?;
        let deliveries = answer["deliveries"].clone();
        let package = &answer["package"];
        let ledger = delivered(&package_id, &deliveries, &args.content);
        Ok(json!({
            "package_id": package_id, "version": package["version"].as_u64().unwrap_or(1),
            "status": package["status"].as_str().unwrap_or("published"), "files": files,
            "deliveries": deliveries, "ledger": ledger,
            "observed_rights": observed_rights(package, &args.content),
        }))
    }

    /// `vip.replace_package_content`.
    pub(super) async fn replace_package_content(
        &self,
        arguments: &Value,
        key: &str,
    ) -> Result<Value> {
        let args: ReplaceContentArgs = parse_arguments(NAME, "replace_package_content", arguments)?;
        self.check_content(&args.content, "replace_package_content")
            .await?;
        let files = self
            .upload_all(&args.package_id, &args.content, key)
            .await?;
        let file_ids: Vec<&Value> = files.iter().map(|file| &file["file_id"]).collect();
        let mut body = json!({"file_ids": file_ids});
        if let Some(note) = &args.note {
            body["note"] = json!(note);
        }
        let path = format!("/v1/packages/{}/versions", segment(&args.package_id));
        let answer = self
            .client
            .call_idempotent(Method::POST, path, body, &format!("{key}:version"))
            .await?;
        let package = &answer["package"];
        let version = required(package, "/version", "vip version")?.clone();
        let superseded_deliveries = answer["superseded"].as_array().cloned().unwrap_or_default();
        let mut ledger: Vec<LedgerChange> = superseded_deliveries
            .iter()
            .map(|delivery| superseded(&args.package_id, delivery, &version))
            .collect();
        let deliveries = answer["deliveries"].clone();
        ledger.extend(delivered(&args.package_id, &deliveries, &args.content));
        let superseded_ids: Vec<&Value> = superseded_deliveries
            .iter()
            .map(|delivery| &delivery["id"])
            .collect();
        Ok(json!({
            "package_id": args.package_id, "version": version, "files": files,
            "deliveries": deliveries, "superseded": superseded_ids, "ledger": ledger,
            "observed_rights": observed_rights(package, &args.content),
        }))
    }

    /// Refuses an empty content list (a direct caller skips the schema's `minItems`) and
    /// content missing from the store, before any request.
    async fn check_content(&self, content: &[Artifact], action: &str) -> Result<()> {
        if content.is_empty() {
            return Err(Error::invalid_arguments(format!(
                "vip.{action}: content must hold at least one artifact"
            )));
        }
        for (index, artifact) in content.iter().enumerate() {
            if !self.content.contains(&artifact.content.sha256).await {
                return Err(Error::permanent(
                    "content_not_found",
                    format!(
                        "vip.{action}: content[{index}] ({} of {} {} version {}, sha256 {}) is not in the content store",
                        artifact.content.file_name,
                        artifact.system,
                        artifact.asset_id,
                        artifact.version,
                        artifact.content.sha256
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Creates the package of a `publish_content` without `package_id`.
    async fn create_for_content(
        &self,
        title: &str,
        args: &PublishContentArgs,
        key: &str,
    ) -> Result<String> {
        let mut body = json!({"title": title, "assets": []});
        for (field, value) in [
            ("metadata", &args.metadata),
            ("rights", &args.rights),
            ("recipients", &args.recipients),
        ] {
            if let Some(value) = value {
                body[field] = value.clone();
            }
        }
        let package = self
            .client
            .call_idempotent(
                Method::POST,
                "/v1/packages",
                body,
                &format!("{key}:package"),
            )
            .await?;
        required(&package, "/id", "vip package")?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::permanent("invalid_response", "vip package: id is not a string"))
    }

    /// Uploads every artifact to the package and checks what the platform received.
    async fn upload_all(
        &self,
        package_id: &str,
        artifacts: &[Artifact],
        key: &str,
    ) -> Result<Vec<Value>> {
        let mut files = Vec::with_capacity(artifacts.len());
        for (index, artifact) in artifacts.iter().enumerate() {
            let bytes = self.content.read(&artifact.content).await?;
            let asset = json!({"source": artifact.system, "source_id": artifact.asset_id,
                               "version_id": artifact.version});
            let parts = vec![
                Part::Text {
                    name: "asset".to_owned(),
                    value: asset.to_string(),
                },
                Part::File {
                    name: "file".to_owned(),
                    file_name: artifact.content.file_name.clone(),
                    content_type: artifact.content.content_type.clone(),
                    bytes: Bytes::from(bytes),
                },
            ];
            let path = format!("/v1/packages/{}/files", segment(package_id));
            let file = self
                .client
                .call(
                    &Request::new(Method::POST, path)
                        .multipart(parts)
                        .idempotent(IDEMPOTENCY_HEADER, &format!("{key}:file:{index}")),
                )
                .await?;
            check_received(package_id, artifact, &file)?;
            files.push(
                json!({"file_id": file["id"], "file_name": artifact.content.file_name,
                              "sha256": file["sha256"], "size": file["size"],
                              "asset_id": artifact.asset_id, "version": artifact.version}),
            );
        }
        Ok(files)
    }
}

/// The platform's file must be the artifact's bytes.
fn check_received(package_id: &str, artifact: &Artifact, file: &Value) -> Result<()> {
    let sha256 = file["sha256"].as_str().unwrap_or_default();
    let size = file["size"].as_u64();
    if sha256 == artifact.content.sha256 && size == Some(artifact.content.size) {
        return Ok(());
    }
    Err(Error::permanent(
        "content_mismatch",
        format!(
            "vip package {package_id}: file {} of {} {} version {} arrived as sha256 {sha256:?}, {} bytes; sent sha256 {}, {} bytes",
            artifact.content.file_name,
            artifact.system,
            artifact.asset_id,
            artifact.version,
            size.map_or_else(|| "?".to_owned(), |size| size.to_string()),
            artifact.content.sha256,
            artifact.content.size
        ),
    ))
}

/// A `delivered` change per delivery and artifact, and a `failed` status after those of a
/// delivery that failed.
fn delivered(package_id: &str, deliveries: &Value, artifacts: &[Artifact]) -> Vec<LedgerChange> {
    let mut changes = Vec::new();
    for delivery in deliveries.as_array().into_iter().flatten() {
        let (Some(delivery_id), Some(recipient_id)) =
            (delivery["id"].as_str(), delivery["recipient_id"].as_str())
        else {
            continue;
        };
        for artifact in artifacts {
            changes.push(LedgerChange::Delivered(Delivery {
                system: artifact.system.clone(),
                asset_id: artifact.asset_id.clone(),
                version: artifact.version.clone(),
                sha256: artifact.content.sha256.clone(),
                partner: recipient_id.to_owned(),
                channel: NAME.to_owned(),
                reference: package_id.to_owned(),
                receipt: Some(delivery_id.to_owned()),
            }));
        }
        if delivery["status"] == "failed" {
            changes.push(LedgerChange::Status(StatusChange {
                status: DeliveryStatus::Failed,
                channel: NAME.to_owned(),
                reference: package_id.to_owned(),
                partner: Some(recipient_id.to_owned()),
                receipt: Some(delivery_id.to_owned()),
                at: instant(&delivery["failed_at"]),
                detail: Some(json!({"error": delivery["error"]})),
            }));
        }
    }
    changes
}

/// The `superseded` status of an earlier delivery.
fn superseded(package_id: &str, delivery: &Value, version: &Value) -> LedgerChange {
    LedgerChange::Status(StatusChange {
        status: DeliveryStatus::Superseded,
        channel: NAME.to_owned(),
        reference: package_id.to_owned(),
        partner: delivery["recipient_id"].as_str().map(str::to_owned),
        receipt: delivery["id"].as_str().map(str::to_owned),
        at: instant(&delivery["superseded_at"]),
        detail: Some(json!({"version": version})),
    })
}

/// The package's rights window for each asset delivered, when it has one.
fn observed_rights(package: &Value, artifacts: &[Artifact]) -> Vec<ObservedRights> {
    let bound = |name: &str, end_of_day: bool| {
        package["rights"][name]
            .as_str()
            .and_then(|text| crate::asset::parse_instant(text, end_of_day))
    };
    let window = RightsWindow::new(bound("valid_from", false), bound("valid_until", true));
    if window.valid_from.is_none() && window.valid_until.is_none() {
        return Vec::new();
    }
    let assets: BTreeSet<(&str, &str)> = artifacts
        .iter()
        .map(|artifact| (artifact.system.as_str(), artifact.asset_id.as_str()))
        .collect();
    assets
        .into_iter()
        .map(|(system, asset_id)| ObservedRights {
            system: system.to_owned(),
            asset_id: asset_id.to_owned(),
            window: window.clone(),
        })
        .collect()
}
