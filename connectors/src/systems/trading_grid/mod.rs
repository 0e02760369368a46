//! The `trading_grid` connector: OpenText Business Network.
//!
//! It speaks the OAuth token service (`POST /v1/oauth2/tokens?grant_type=client_credentials`
//! with the consumer key and secret as HTTP Basic) and Community Management
//! (`/TGCommunityServices/v1/companies/{companyId}/partnerDirectory`) as OpenText
//! publishes them \[V\], and the partner-hub operations OpenText exposes no API for on our
//! `/hub/v1` design \[D\] (`trading-grid.md`): communities, groups and members, posts,
//! notifications, issues and acknowledgements. Tokens (about 10 h) are cached and
//! refreshed on 401. State-changing hub requests carry the attempt's `Idempotency-Key`
//! \[D\]. Error messages come from the Cartographer shape (`message`) or the gateway's
//! `fault.faultstring`.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::TradingGridConfig;
use crate::connector::{ActionSpec, Connector, Error, Invocation, Result};
use crate::http::Secret;
use crate::rest::{Request, RestClient, TokenSource, parse_arguments, required, segment};
use crate::schema::{action, array_of, object, string};

mod events;
pub mod feed;

pub mod config;
pub(crate) mod setup;
pub mod simulator;

/// The connector's name.
pub const NAME: &str = "trading_grid";

const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The credentials of the Trading Grid connector.
#[derive(Debug, Clone)]
pub struct TradingGridCredentials {
    /// OAuth consumer key.
    pub client_id: Secret,
    /// OAuth consumer secret.
    pub client_secret: Secret,
}

impl TradingGridCredentials {
    /// Reads the variables named by `config`.
    pub fn from_environment(config: &TradingGridConfig) -> Result<Self, crate::config::Error> {
        Ok(Self {
            client_id: crate::config::credential(
                "connectors.trading_grid.client_id_env",
                &config.client_id_env,
            )?,
            client_secret: crate::config::credential(
                "connectors.trading_grid.client_secret_env",
                &config.client_secret_env,
            )?,
        })
    }
}

/// The Trading Grid connector.
pub struct TradingGridConnector {
    client: RestClient,
    company_id: String,
    actions: Vec<ActionSpec>,
    /// Where fetched bytes are kept and delivered content is read from.
    content: crate::content::ContentStore,
    /// How often the change poller reads ([`feed`]).
    poll_interval: std::time::Duration,
}

struct ConsumerCredentials(TradingGridCredentials);

#[async_trait]
impl TokenSource for ConsumerCredentials {
    async fn fetch(&self, client: &RestClient) -> Result<Secret> {
        let request = Request::new(Method::POST, "/v1/oauth2/tokens")
            .query("grant_type", "client_credentials");
        let answer = client
            .call_unauthenticated(&request, Some((&self.0.client_id, &self.0.client_secret)))
            .await?;
        let token = required(&answer, "/access_token", "trading grid token")?
            .as_str()
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_response",
                    "trading grid token: access_token is not a string",
                )
            })?;
        Ok(Secret::new(token))
    }
}

fn message_of(body: &Value) -> Option<String> {
    if let Some(message) = body.get("message").and_then(Value::as_str) {
        return Some(match body.get("error-code").and_then(Value::as_str) {
            Some(code) => format!("{message} ({code})"),
            None => message.to_owned(),
        });
    }
    let fault = body.get("fault")?;
    let text = fault.get("faultstring")?.as_str()?;
    Some(
        match fault.pointer("/detail/errorcode").and_then(Value::as_str) {
            Some(code) => format!("{text} ({code})"),
            None => text.to_owned(),
        },
    )
}

impl TradingGridConnector {
    /// The same connector, keeping fetched bytes in (and reading delivered content from)
    /// `content`.
    pub fn with_content(mut self, content: crate::content::ContentStore) -> Self {
        self.content = content;
        self
    }

    /// A connector for `config` with `credentials`.
    pub fn new(config: &TradingGridConfig, credentials: TradingGridCredentials) -> Result<Self> {
        let secrets = [&credentials.client_id, &credentials.client_secret];
        let client = RestClient::new(
            &config.base_url,
            config.timeout,
            Box::new(ConsumerCredentials(credentials.clone())),
            &secrets,
            message_of,
        )?;
        Ok(Self {
            client,
            company_id: config.company_id.clone(),
            actions: action_specs(),
            content: crate::content::ContentStore::scratch(),
            poll_interval: config.poll_interval,
        })
    }
}

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
struct ListAcksArgs {
    post_id: String,
}

#[async_trait]
impl Connector for TradingGridConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    fn description(&self) -> &str {
        "OpenText Trading Grid: the partner directory and the partner hub (communities, posts, notifications, issues, acknowledgements)."
    }

    fn events(&self) -> &[crate::EventSpec] {
        &events::EVENTS
    }

    fn change_feed(self: std::sync::Arc<Self>) -> Option<crate::feed::SharedFeed> {
        Some(self)
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Value> {
        let action_key = invocation.action_key();
        let key = action_key.as_str();
        let arguments = &invocation.arguments;
        match invocation.action.as_str() {
            "list_partners" => self.list_partners(arguments).await,
            "list_communities" => self.list_communities(arguments).await,
            "list_groups" => self.list_groups(arguments).await,
            "list_group_members" => self.list_group_members(arguments).await,
            "post_message" => self.post_message(arguments, key).await,
            "notify_partners" => self.notify_partners(arguments, key).await,
            "open_issue" => self.open_issue(arguments, key).await,
            "update_issue" => self.update_issue(arguments, key).await,
            "comment_on_issue" => self.comment_on_issue(arguments, key).await,
            "record_acknowledgement" => self.record_acknowledgement(arguments, key).await,
            "list_acknowledgements" => self.list_acknowledgements(arguments).await,
            other => Err(Error::permanent(
                "unknown_action",
                format!("trading_grid has no action {other:?}"),
            )),
        }
    }
}

/// One method per action; [`Connector::invoke`] picks one by name.
impl TradingGridConnector {
    /// `trading_grid.list_partners`.
    async fn list_partners(&self, arguments: &Value) -> Result<Value> {
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
    async fn list_communities(&self, arguments: &Value) -> Result<Value> {
        let _: Value = parse_arguments(NAME, "list_communities", arguments)?;
        let answer = self
            .client
            .call(&Request::get("/hub/v1/communities"))
            .await?;
        Ok(json!({"communities": answer["communities"].as_array().cloned().unwrap_or_default()}))
    }

    /// `trading_grid.list_groups`.
    async fn list_groups(&self, arguments: &Value) -> Result<Value> {
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
    async fn list_group_members(&self, arguments: &Value) -> Result<Value> {
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
    async fn post_message(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: PostArgs = parse_arguments(NAME, "post_message", arguments)?;
        let body = json!({"group_ids": args.group_ids, "partner_company_ids": args.partner_company_ids, "title": args.title,
                          "body": args.body, "attachments": args.attachments, "requires_ack": args.requires_ack,
                          "correlation_id": args.correlation_id});
        let path = format!("/hub/v1/communities/{}/posts", segment(&args.community_id));
        let answer = self
            .client
            .call(
                &Request::new(Method::POST, path)
                    .json(body)
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        Ok(
            json!({"post_id": required(&answer, "/post_id", "trading grid post")?, "status": answer["status"]}),
        )
    }

    /// `trading_grid.notify_partners`.
    async fn notify_partners(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: NotifyArgs = parse_arguments(NAME, "notify_partners", arguments)?;
        let mut body = json!({"recipients": {"company_ids": args.company_ids, "group_ids": args.group_ids, "login_ids": args.login_ids},
                              "channel": args.channel, "subject": args.subject, "message": args.message});
        if let Some(post_id) = args.post_id {
            body["post_id"] = json!(post_id);
        }
        let answer = self
            .client
            .call(
                &Request::new(Method::POST, "/hub/v1/notifications")
                    .json(body)
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        Ok(
            json!({"notification_id": required(&answer, "/notification_id", "trading grid notification")?, "queued": answer["queued"]}),
        )
    }

    /// `trading_grid.open_issue`.
    async fn open_issue(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: OpenIssueArgs = parse_arguments(NAME, "open_issue", arguments)?;
        let mut body = json!({"title": args.title, "description": args.description, "partner_company_id": args.partner_company_id,
                              "severity": args.severity, "status": "open"});
        if let Some(related) = args.related {
            body["related"] = related;
        }
        let issue = self
            .client
            .call(
                &Request::new(Method::POST, "/hub/v1/issues")
                    .json(body)
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        issue_output(&issue)
    }

    /// `trading_grid.update_issue`.
    async fn update_issue(&self, arguments: &Value, key: &str) -> Result<Value> {
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
            .call(
                &Request::new(Method::PATCH, path)
                    .json(body)
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        issue_output(&issue)
    }

    /// `trading_grid.comment_on_issue`.
    async fn comment_on_issue(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: CommentArgs = parse_arguments(NAME, "comment_on_issue", arguments)?;
        let path = format!("/hub/v1/issues/{}/comments", segment(&args.issue_id));
        let body = json!({"body": args.comment, "author": args.author});
        let comment = self
            .client
            .call(
                &Request::new(Method::POST, path)
                    .json(body)
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        Ok(
            json!({"issue_id": args.issue_id, "comment_id": required(&comment, "/comment_id", "trading grid comment")?}),
        )
    }

    /// `trading_grid.record_acknowledgement`.
    async fn record_acknowledgement(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: AckArgs = parse_arguments(NAME, "record_acknowledgement", arguments)?;
        let path = format!("/hub/v1/posts/{}/acknowledgements", segment(&args.post_id));
        let body = json!({"company_id": args.company_id, "login_id": args.login_id, "ack_type": args.ack_type, "comment": args.comment});
        let ack = self
            .client
            .call(
                &Request::new(Method::POST, path)
                    .json(body)
                    .idempotent(IDEMPOTENCY_HEADER, key),
            )
            .await?;
        Ok(
            json!({"acknowledgement_id": required(&ack, "/acknowledgement_id", "trading grid acknowledgement")?, "post_id": args.post_id, "ack_type": ack["ack_type"]}),
        )
    }

    /// `trading_grid.list_acknowledgements`.
    async fn list_acknowledgements(&self, arguments: &Value) -> Result<Value> {
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

fn issue_output(issue: &Value) -> Result<Value> {
    Ok(
        json!({"issue_id": required(issue, "/issue_id", "trading grid issue")?, "status": issue["status"], "severity": issue["severity"]}),
    )
}

fn action_specs() -> Vec<ActionSpec> {
    let any_object = json!({"type": "object"});
    let severity = json!({"type": "string", "enum": ["low", "medium", "high"]});
    let issue_status = json!({"type": "string", "enum": ["open", "in_progress", "waiting_partner", "resolved", "closed"]});
    let issue_out = object(
        &["issue_id", "status"],
        json!({"issue_id": string(), "status": string(), "severity": {"type": ["string", "null"]}}),
    );
    let attachment = json!({"type": "object", "required": ["name"], "properties": {
        "name": string(), "content_type": string(), "url": string(), "asset_ref": string()
    }, "additionalProperties": false});
    vec![
        action(
            "list_partners",
            "List our trading partners from the Community Management partner directory, optionally filtered by name.",
            object(&[], json!({"name": string()})),
            object(
                &["partners"],
                json!({"partners": array_of(any_object.clone())}),
            ),
        ),
        action(
            "list_communities",
            "List the partner communities on the hub.",
            object(&[], json!({})),
            object(
                &["communities"],
                json!({"communities": array_of(any_object.clone())}),
            ),
        ),
        action(
            "list_groups",
            "List the partner groups of a community.",
            object(&["community_id"], json!({"community_id": string()})),
            object(&["groups"], json!({"groups": array_of(any_object.clone())})),
        ),
        action(
            "list_group_members",
            "List the partner companies in a group.",
            object(&["group_id"], json!({"group_id": string()})),
            object(
                &["members"],
                json!({"members": array_of(any_object.clone())}),
            ),
        ),
        action(
            "post_message",
            "Post a message with attachments or links to a community, its groups or chosen partners.",
            object(
                &["community_id", "title", "body"],
                json!({"community_id": string(), "group_ids": array_of(string()),
                "partner_company_ids": array_of(string()), "title": {"type": "string", "minLength": 1}, "body": string(),
                "attachments": array_of(attachment), "requires_ack": {"type": "boolean"}, "correlation_id": string()}),
            ),
            object(
                &["post_id", "status"],
                json!({"post_id": string(), "status": string()}),
            ),
        ),
        action(
            "notify_partners",
            "Notify partner companies, groups or users by e-mail or portal.",
            object(
                &["channel", "subject", "message"],
                json!({"company_ids": array_of(string()), "group_ids": array_of(string()),
                "login_ids": array_of(string()), "channel": {"type": "string", "enum": ["email", "portal"]}, "subject": string(),
                "message": string(), "post_id": string()}),
            ),
            object(
                &["notification_id", "queued"],
                json!({"notification_id": string(), "queued": {"type": "integer"}}),
            ),
        ),
        action(
            "open_issue",
            "Open an issue (case) with a partner company.",
            object(
                &["title", "description", "partner_company_id", "severity"],
                json!({"title": string(), "description": string(),
                "partner_company_id": string(), "severity": severity.clone(), "related": {"type": "object", "properties": {
                    "transactionid": string(), "post_id": string(), "asset_id": string()}, "additionalProperties": false}}),
            ),
            issue_out.clone(),
        ),
        action(
            "update_issue",
            "Change an issue's status, severity or description.",
            object(
                &["issue_id"],
                json!({"issue_id": string(), "status": issue_status, "severity": severity, "description": string()}),
            ),
            issue_out,
        ),
        action(
            "comment_on_issue",
            "Add a comment to an issue.",
            object(
                &["issue_id", "comment"],
                json!({"issue_id": string(), "comment": string(), "author": string()}),
            ),
            object(
                &["issue_id", "comment_id"],
                json!({"issue_id": string(), "comment_id": string()}),
            ),
        ),
        action(
            "record_acknowledgement",
            "Record a partner's acknowledgement of a post.",
            object(
                &["post_id", "company_id", "ack_type"],
                json!({"post_id": string(), "company_id": string(), "login_id": string(),
                "ack_type": {"type": "string", "enum": ["received", "accepted", "rejected"]}, "comment": string()}),
            ),
            object(
                &["acknowledgement_id", "post_id"],
                json!({"acknowledgement_id": string(), "post_id": string(), "ack_type": {"type": ["string", "null"]}}),
            ),
        ),
        action(
            "list_acknowledgements",
            "Read the acknowledgements partners gave for a post.",
            object(&["post_id"], json!({"post_id": string()})),
            object(
                &["post_id", "acknowledgements"],
                json!({"post_id": string(), "acknowledgements": array_of(any_object)}),
            ),
        ),
    ]
}
