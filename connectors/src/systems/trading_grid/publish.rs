//! Content by digest on the hub \[D\]: `publish_content` uploads each artifact's bytes
//! from the content store (`POST /hub/v1/documents`, raw body), checks the digest the hub
//! reports, and posts the documents by id; `withdraw_post` and `withdraw_document` take
//! access away; `get_post` reads a post back. Outputs carry document ids and digests,
//! never a link, and the ledger changes the engine records.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{IDEMPOTENCY_HEADER, NAME, TradingGridConnector};
use crate::connector::{Error, Result};
use crate::content::Artifact;
use crate::effects::{Delivery, DeliveryStatus, LedgerChange, StatusChange};
use crate::rest::{Request, parse_arguments, required, segment};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishArgs {
    community_id: String,
    #[serde(default)]
    group_ids: Vec<String>,
    #[serde(default)]
    partner_company_ids: Vec<String>,
    title: String,
    body: String,
    content: Vec<Artifact>,
    #[serde(default)]
    requires_ack: bool,
    correlation_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawPostArgs {
    post_id: String,
    #[serde(default)]
    partner_company_ids: Vec<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawDocumentArgs {
    post_id: String,
    document_id: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostArgs {
    post_id: String,
}

/// The channel name of hub deliveries in the ledger.
pub(super) const CHANNEL: &str = "trading_grid";

/// An RFC 3339 instant from the hub, if it is one.
pub(super) fn instant(value: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

fn ledger_json(changes: &[LedgerChange]) -> Result<Value> {
    serde_json::to_value(changes).map_err(|error| {
        Error::permanent(
            "invalid_response",
            format!("trading grid ledger changes cannot be written: {error}"),
        )
    })
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

impl TradingGridConnector {
    /// Uploads one artifact's bytes and checks the digest the hub reports.
    async fn upload(&self, artifact: &Artifact, key: &str) -> Result<Value> {
        let bytes = self.content.read(&artifact.content).await?;
        let request = Request::new(Method::POST, "/hub/v1/documents")
            .query("file_name", &artifact.content.file_name)
            .bytes(bytes, &artifact.content.content_type)
            .idempotent(IDEMPOTENCY_HEADER, key);
        let document = self.client.call(&request).await?;
        let document_id = required(&document, "/document_id", "trading grid document")?;
        let reported = document["sha256"].as_str().unwrap_or_default();
        if reported != artifact.content.sha256 {
            return Err(Error::permanent(
                "content_digest_mismatch",
                format!(
                    "trading grid document {document_id} ({}): the hub holds bytes hashing to {reported:?}, not the {} that was sent",
                    artifact.content.file_name, artifact.content.sha256
                ),
            ));
        }
        Ok(
            json!({"document_id": document_id, "sha256": reported, "file_name": artifact.content.file_name}),
        )
    }

    /// `trading_grid.publish_content`.
    pub(super) async fn publish_content(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: PublishArgs = parse_arguments(NAME, "publish_content", arguments)?;
        if args.content.is_empty() {
            return Err(Error::invalid_arguments(
                "trading_grid.publish_content: content must hold at least one artifact",
            ));
        }
        let mut documents = Vec::with_capacity(args.content.len());
        for (index, artifact) in args.content.iter().enumerate() {
            documents.push(
                self.upload(artifact, &format!("{key}:document:{index}"))
                    .await?,
            );
        }
        let document_ids: Vec<&Value> = documents
            .iter()
            .map(|document| &document["document_id"])
            .collect();
        let body = json!({"group_ids": args.group_ids, "partner_company_ids": args.partner_company_ids,
                          "title": args.title, "body": args.body, "document_ids": document_ids,
                          "requires_ack": args.requires_ack, "correlation_id": args.correlation_id});
        let path = format!("/hub/v1/communities/{}/posts", segment(&args.community_id));
        let answer = self
            .client
            .call_idempotent(Method::POST, path, body, &format!("{key}:post"))
            .await?;
        let post_id = required(&answer, "/post_id", "trading grid post")?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let recipients = strings(&answer["recipients"]);
        let mut ledger = Vec::with_capacity(recipients.len() * documents.len());
        for partner in &recipients {
            for (artifact, document) in args.content.iter().zip(&documents) {
                ledger.push(LedgerChange::Delivered(Delivery {
                    system: artifact.system.clone(),
                    asset_id: artifact.asset_id.clone(),
                    version: artifact.version.clone(),
                    sha256: artifact.content.sha256.clone(),
                    partner: partner.clone(),
                    channel: CHANNEL.to_owned(),
                    reference: post_id.clone(),
                    receipt: document["document_id"].as_str().map(str::to_owned),
                }));
            }
        }
        Ok(
            json!({"post_id": post_id, "status": answer["status"], "documents": documents,
                  "recipients": recipients, "ledger": ledger_json(&ledger)?}),
        )
    }

    /// `trading_grid.withdraw_post`.
    pub(super) async fn withdraw_post(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: WithdrawPostArgs = parse_arguments(NAME, "withdraw_post", arguments)?;
        let path = format!("/hub/v1/posts/{}/withdrawal", segment(&args.post_id));
        let body = json!({"partner_company_ids": args.partner_company_ids, "reason": args.reason});
        let answer = self
            .client
            .call_idempotent(Method::POST, path, body, key)
            .await?;
        let partners: Vec<Option<String>> = if args.partner_company_ids.is_empty() {
            vec![None]
        } else {
            args.partner_company_ids.iter().cloned().map(Some).collect()
        };
        let ledger: Vec<LedgerChange> = partners
            .into_iter()
            .map(|partner| {
                LedgerChange::Status(StatusChange {
                    status: DeliveryStatus::Withdrawn,
                    channel: CHANNEL.to_owned(),
                    reference: args.post_id.clone(),
                    partner,
                    receipt: None,
                    at: instant(&answer["withdrawn_at"]),
                    detail: Some(json!({"reason": args.reason})),
                })
            })
            .collect();
        Ok(json!({"post_id": args.post_id, "status": answer["status"],
                  "withdrawn_partners": strings(&answer["withdrawn_partners"]),
                  "ledger": ledger_json(&ledger)?}))
    }

    /// `trading_grid.withdraw_document`.
    pub(super) async fn withdraw_document(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: WithdrawDocumentArgs = parse_arguments(NAME, "withdraw_document", arguments)?;
        let path = format!(
            "/hub/v1/posts/{}/documents/{}/withdrawal",
            segment(&args.post_id),
            segment(&args.document_id)
        );
        let answer = self
            .client
            .call_idempotent(Method::POST, path, json!({"reason": args.reason}), key)
            .await?;
        let ledger = [LedgerChange::Status(StatusChange {
            status: DeliveryStatus::Withdrawn,
            channel: CHANNEL.to_owned(),
            reference: args.post_id.clone(),
            partner: None,
            receipt: Some(args.document_id.clone()),
            at: instant(&answer["withdrawn_at"]),
            detail: Some(json!({"reason": args.reason})),
        })];
        Ok(
            json!({"post_id": args.post_id, "document_id": args.document_id, "status": answer["status"],
                  "ledger": ledger_json(&ledger)?}),
        )
    }

    /// `trading_grid.get_post`.
    pub(super) async fn get_post(&self, arguments: &Value) -> Result<Value> {
        let args: PostArgs = parse_arguments(NAME, "get_post", arguments)?;
        let post = self
            .client
            .call(&Request::get(format!(
                "/hub/v1/posts/{}",
                segment(&args.post_id)
            )))
            .await?;
        let list = |field: &str, shape: &dyn Fn(&Value) -> Value| -> Vec<Value> {
            post[field]
                .as_array()
                .into_iter()
                .flatten()
                .map(shape)
                .collect()
        };
        let documents = list("documents", &|document| {
            json!({"document_id": document["document_id"], "file_name": document["file_name"],
                   "content_type": document["content_type"], "size": document["size"],
                   "sha256": document["sha256"], "withdrawn": document["withdrawn"] == true})
        });
        let comments = list("comments", &|comment| {
            json!({"comment_id": comment["comment_id"], "company_id": comment["company_id"],
                   "login_id": comment["login_id"], "body": comment["body"], "created_at": comment["created_at"]})
        });
        let downloads = list("downloads", &|download| {
            json!({"document_id": download["document_id"], "company_id": download["company_id"],
                   "login_id": download["login_id"], "downloaded_at": download["downloaded_at"]})
        });
        Ok(json!({
            "post_id": required(&post, "/post_id", "trading grid post")?, "community_id": post["community_id"],
            "title": post["title"], "body": post["body"], "status": post["status"],
            "requires_ack": post["requires_ack"] == true, "withdrawn": post["status"] == "withdrawn",
            "withdrawn_partners": strings(&post["withdrawn_partners"]), "recipients": strings(&post["recipients"]),
            "documents": documents, "comments": comments, "downloads": downloads, "created_at": post["created_at"],
        }))
    }
}
