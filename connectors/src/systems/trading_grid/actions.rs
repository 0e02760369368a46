//! The directory, messaging, issue and acknowledgement actions: one method per action,
//! which [`Connector::invoke`](crate::Connector::invoke) picks by name.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{NAME, TradingGridConnector};
use crate::connector::Result;
use crate::rest::{Request, parse_arguments, required, segment};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListPartnersArgs {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommunityArgs {
    community_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupArgs {
    group_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostArgs {
    community_id: String,
    #[serde(default)]
    group_ids: Vec<String>,
    #[serde(default)]
    partner_company_ids: Vec<String>,
    title: String,
    body: String,
    #[serde(default)]
    attachments: Vec<Value>,
    #[serde(default)]
    requires_ack: bool,
    correlation_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyArgs {
    #[serde(default)]
    company_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
    #[serde(default)]
    login_ids: Vec<String>,
    channel: String,
    subject: String,
    message: String,
    post_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenIssueArgs {
    title: String,
    description: String,
    partner_company_id: String,
    severity: String,
    related: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateIssueArgs {
    issue_id: String,
    status: Option<String>,
    severity: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentArgs {
    issue_id: String,
    comment: String,
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckArgs {
    post_id: String,
    company_id: String,
    login_id: Option<String>,
    ack_type: String,
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueArgs {
    issue_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListAcksArgs {
    post_id: String,
}

impl TradingGridConnector {
    /// `trading_grid.list_partners`.
    pub(super) async fn list_partners(&self, arguments: &Value) -> Result<Value> {
        let args: ListPartnersArgs = parse_arguments(NAME, "list_partners", arguments)?;
        let path = format!(
            "/TGCommunityServices/v1/companies/{}/partnerDirectory",
            segment(&self.company_id)
        );
        let answer = self
            .client
            .call(&Request::get(path).query_opt("partnerCompanyName", args.name))
            .await?;
        let partners: Vec<Value> = answer["partnerDirectory"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|partner| {
                json!({"company_id": partner["partnerCompanyId"], "name": partner["partnerCompanyName"],
                       "edi_addresses": partner["ediAddresses"].as_array().cloned().unwrap_or_default(),
                       "status": partner["partnershipStatus"]})
            })
            .collect();
        Ok(json!({"partners": partners}))
    }

    /// `trading_grid.list_communities`.
    pub(super) async fn list_communities(&self, arguments: &Value) -> Result<Value> {
        let _: Value = parse_arguments(NAME, "list_communities", arguments)?;
        let answer = self
            .client
            .call(&Request::get("/hub/v1/communities"))
            .await?;
        Ok(json!({"communities": answer["communities"].as_array().cloned().unwrap_or_default()}))
    }

    /// `trading_grid.list_groups`.
    pub(super) async fn list_groups(&self, arguments: &Value) -> Result<Value> {
        let args: CommunityArgs = parse_arguments(NAME, "list_groups", arguments)?;
        let answer = self
            .client
            .call(&Request::get(format!(
                "/hub/v1/communities/{}/groups",
                segment(&args.community_id)
            )))
            .await?;
        let groups: Vec<Value> = answer["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|group| json!({"group_id": group["group_id"], "name": group["name"], "community_id": group["community_id"]}))
            .collect();
        Ok(json!({"groups": groups}))
    }

    /// `trading_grid.list_group_members`.
    pub(super) async fn list_group_members(&self, arguments: &Value) -> Result<Value> {
        let args: GroupArgs = parse_arguments(NAME, "list_group_members", arguments)?;
        let answer = self
            .client
            .call(&Request::get(format!(
                "/hub/v1/groups/{}/members",
                segment(&args.group_id)
            )))
            .await?;
        let members: Vec<Value> = answer["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|member| json!({"company_id": member["companyId"], "name": member["companyName"]}))
            .collect();
        Ok(json!({"members": members}))
    }

    /// `trading_grid.post_message`.
    pub(super) async fn post_message(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: PostArgs = parse_arguments(NAME, "post_message", arguments)?;
        let body = json!({"group_ids": args.group_ids, "partner_company_ids": args.partner_company_ids, "title": args.title,
                          "body": args.body, "attachments": args.attachments, "requires_ack": args.requires_ack,
                          "correlation_id": args.correlation_id});
        let path = format!("/hub/v1/communities/{}/posts", segment(&args.community_id));
        let answer = self
            .client
            .call_idempotent(Method::POST, path, body, key)
            .await?;
        Ok(
            json!({"post_id": required(&answer, "/post_id", "trading grid post")?, "status": answer["status"]}),
        )
    }

    /// `trading_grid.notify_partners`.
    pub(super) async fn notify_partners(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: NotifyArgs = parse_arguments(NAME, "notify_partners", arguments)?;
        let mut body = json!({"recipients": {"company_ids": args.company_ids, "group_ids": args.group_ids, "login_ids": args.login_ids},
                              "channel": args.channel, "subject": args.subject, "message": args.message});
        if let Some(post_id) = args.post_id {
            body["post_id"] = json!(post_id);
        }
        let answer = self
            .client
            .call_idempotent(Method::POST, "/hub/v1/notifications", body, key)
            .await?;
        Ok(
            json!({"notification_id": required(&answer, "/notification_id", "trading grid notification")?, "queued": answer["queued"]}),
        )
    }

    /// `trading_grid.open_issue`.
    pub(super) async fn open_issue(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: OpenIssueArgs = parse_arguments(NAME, "open_issue", arguments)?;
        let mut body = json!({"title": args.title, "description": args.description, "partner_company_id": args.partner_company_id,
                              "severity": args.severity, "status": "open"});
        if let Some(related) = args.related {
            body["related"] = related;
        }
        let issue = self
            .client
            .call_idempotent(Method::POST, "/hub/v1/issues", body, key)
            .await?;
        issue_output(&issue)
    }

    /// `trading_grid.update_issue`.
    pub(super) async fn update_issue(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: UpdateIssueArgs = parse_arguments(NAME, "update_issue", arguments)?;
        let mut body = json!({});
        for (field, value) in [
            ("status", args.status),
            ("severity", args.severity),
            ("description", args.description),
        ] {
            if let Some(value) = value {
                body[field] = json!(value);
            }
        }
        let path = format!("/hub/v1/issues/{}", segment(&args.issue_id));
        let issue = self
            .client
            .call_idempotent(Method::PATCH, path, body, key)
            .await?;
        issue_output(&issue)
    }

    /// `trading_grid.comment_on_issue`.
    pub(super) async fn comment_on_issue(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: CommentArgs = parse_arguments(NAME, "comment_on_issue", arguments)?;
        let path = format!("/hub/v1/issues/{}/comments", segment(&args.issue_id));
        let body = json!({"body": args.comment, "author": args.author});
        let comment = self
            .client
            .call_idempotent(Method::POST, path, body, key)
            .await?;
        Ok(
            json!({"issue_id": args.issue_id, "comment_id": required(&comment, "/comment_id", "trading grid comment")?}),
        )
    }

    /// `trading_grid.record_acknowledgement`.
    pub(super) async fn record_acknowledgement(
        &self,
        arguments: &Value,
        key: &str,
    ) -> Result<Value> {
        let args: AckArgs = parse_arguments(NAME, "record_acknowledgement", arguments)?;
        let path = format!("/hub/v1/posts/{}/acknowledgements", segment(&args.post_id));
        let body = json!({"company_id": args.company_id, "login_id": args.login_id, "ack_type": args.ack_type, "comment": args.comment});
        let ack = self
            .client
            .call_idempotent(Method::POST, path, body, key)
            .await?;
        Ok(
            json!({"acknowledgement_id": required(&ack, "/acknowledgement_id", "trading grid acknowledgement")?, "post_id": args.post_id, "ack_type": ack["ack_type"]}),
        )
    }

    /// `trading_grid.list_acknowledgements`.
    pub(super) async fn list_acknowledgements(&self, arguments: &Value) -> Result<Value> {
        let args: ListAcksArgs = parse_arguments(NAME, "list_acknowledgements", arguments)?;
        let answer = self
            .client
            .call(&Request::get(format!(
                "/hub/v1/posts/{}/acknowledgements",
                segment(&args.post_id)
            )))
            .await?;
        let acknowledgements: Vec<Value> = answer["acknowledgements"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|ack| json!({"acknowledgement_id": ack["acknowledgement_id"], "company_id": ack["company_id"], "login_id": ack["login_id"],
                              "ack_type": ack["ack_type"], "comment": ack["comment"], "created_at": ack["created_at"]}))
            .collect();
        Ok(json!({"post_id": args.post_id, "acknowledgements": acknowledgements}))
    }
}

impl TradingGridConnector {
    /// `trading_grid.get_issue`.
    pub(super) async fn get_issue(&self, arguments: &Value) -> Result<Value> {
        let args: IssueArgs = parse_arguments(NAME, "get_issue", arguments)?;
        let issue = self
            .client
            .call(&Request::get(format!(
                "/hub/v1/issues/{}",
                segment(&args.issue_id)
            )))
            .await?;
        let comments: Vec<Value> = issue["comments"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|comment| {
                json!({"comment_id": comment["comment_id"], "body": comment["body"],
                                  "author": comment["author"], "created_at": comment["created_at"]})
            })
            .collect();
        Ok(json!({
            "issue_id": required(&issue, "/issue_id", "trading grid issue")?, "title": issue["title"],
            "description": issue["description"], "partner_company_id": issue["partner_company_id"],
            "severity": issue["severity"], "status": issue["status"],
            "related": if issue["related"].is_object() { issue["related"].clone() } else { json!({}) },
            "comments": comments, "created_at": issue["created_at"], "updated_at": issue["updated_at"],
        }))
    }
}

fn issue_output(issue: &Value) -> Result<Value> {
    Ok(
        json!({"issue_id": required(issue, "/issue_id", "trading grid issue")?, "status": issue["status"], "severity": issue["severity"]}),
    )
}
