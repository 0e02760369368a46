//! The `vip` connector: the VIP distribution API as designed in `vip.md` \[D\] (the real
//! VIP API is undocumented): OAuth2 client credentials at `POST /v1/oauth2/token`, then
//! Bearer; recipients, packages, deliveries and acknowledgements under `/v1`; cursor
//! paging; `application/problem+json` errors whose `detail` (or `title`) becomes the
//! error message. State-changing requests carry the attempt's `Idempotency-Key`.
//!
//! Content goes out through `content.rs` (`publish_content`, `replace_package_content`:
//! stored bytes uploaded and checked by digest, deliveries reported to the ledger); the
//! platform's signed webhooks are read and mapped to ledger changes in [`events`]; the
//! catalogue is `specs.rs`.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::VipConfig;
use crate::connector::{
    ActionSpec, Connector, Error, EventEffects, EventSpec, InboundEvent, Invocation, Result,
};
use crate::effects::{DeliveryStatus, LedgerChange, StatusChange};
use crate::http::Secret;
use crate::rest::{Request, RestClient, TokenSource, parse_arguments, required, segment};

pub mod config;
mod content;
pub mod events;
pub(crate) mod setup;
pub mod simulator;
mod specs;

/// The connector's name.
pub const NAME: &str = "vip";

const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The credentials of the VIP connector.
#[derive(Debug, Clone)]
pub struct VipCredentials {
    /// OAuth client id.
    pub client_id: Secret,
    /// OAuth client secret.
    pub client_secret: Secret,
}

impl VipCredentials {
    /// Reads the variables named by `config`.
    pub fn from_environment(config: &VipConfig) -> Result<Self, crate::config::Error> {
        Ok(Self {
            client_id: crate::config::credential(
                "connectors.vip.client_id_env",
                &config.client_id_env,
            )?,
            client_secret: crate::config::credential(
                "connectors.vip.client_secret_env",
                &config.client_secret_env,
            )?,
        })
    }
}

/// The VIP connector.
pub struct VipConnector {
    client: RestClient,
    actions: Vec<ActionSpec>,
    /// Where fetched bytes are kept and delivered content is read from.
    content: crate::content::ContentStore,
}

struct ClientCredentials {
    credentials: VipCredentials,
    scope: String,
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn fetch(&self, client: &RestClient) -> Result<Secret> {
        let request = Request::new(Method::POST, "/v1/oauth2/token").form(vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            (
                "client_id".to_owned(),
                self.credentials.client_id.expose().to_owned(),
            ),
            (
                "client_secret".to_owned(),
                self.credentials.client_secret.expose().to_owned(),
            ),
            ("scope".to_owned(), self.scope.clone()),
        ]);
        let answer = client.call_unauthenticated(&request, None).await?;
        let token = required(&answer, "/access_token", "vip token")?
            .as_str()
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_response",
                    "vip token: access_token is not a string",
                )
            })?;
        Ok(Secret::new(token))
    }
}

/// The system's message in a problem+json body.
fn message_of(body: &Value) -> Option<String> {
    let detail = body
        .get("detail")
        .and_then(Value::as_str)
        .or_else(|| body.get("title").and_then(Value::as_str))?;
    let mut message = detail.to_owned();
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        for error in errors {
            message.push_str(&format!(
                "; {}: {}",
                error["field"].as_str().unwrap_or("?"),
                error["message"].as_str().unwrap_or("?")
            ));
        }
    }
    Some(message)
}

impl VipConnector {
    /// The same connector, keeping fetched bytes in (and reading delivered content from)
    /// `content`.
    pub fn with_content(mut self, content: crate::content::ContentStore) -> Self {
        self.content = content;
        self
    }

    /// A connector for `config` with `credentials`.
    pub fn new(config: &VipConfig, credentials: VipCredentials) -> Result<Self> {
        let secrets = [&credentials.client_id, &credentials.client_secret];
        let client = RestClient::new(
            &config.base_url,
            config.timeout,
            Box::new(ClientCredentials {
                credentials: credentials.clone(),
                scope: config.scope.clone(),
            }),
            &secrets,
            message_of,
        )?
        .with_idempotency_header(IDEMPOTENCY_HEADER);
        Ok(Self {
            client,
            actions: specs::action_specs(),
            content: crate::content::ContentStore::scratch(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    group_id: Option<String>,
    package_id: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePackageArgs {
    title: String,
    #[serde(default)]
    assets: Vec<Value>,
    metadata: Option<Value>,
    rights: Option<Value>,
    recipients: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageArgs {
    package_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePackageArgs {
    package_id: String,
    title: Option<String>,
    metadata: Option<Value>,
    rights: Option<Value>,
    recipients: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawArgs {
    package_id: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeArgs {
    delivery_id: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcknowledgeArgs {
    delivery_id: String,
    by: String,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyArgs {
    recipient_ids: Vec<String>,
    subject: String,
    message: String,
}

#[async_trait]
impl Connector for VipConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    fn description(&self) -> &str {
        "VIP: packages of assets distributed to recipient groups, with deliveries and acknowledgements."
    }

    fn events(&self) -> &[EventSpec] {
        &events::EVENTS
    }

    fn read_webhook(&self, body: &Value) -> Option<Result<InboundEvent>> {
        Some(events::read_webhook(body))
    }

    fn event_effects(&self, event: &str, payload: &Value) -> EventEffects {
        events::effects(event, payload)
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Value> {
        let action_key = invocation.action_key();
        let key = action_key.as_str();
        let arguments = &invocation.arguments;
        match invocation.action.as_str() {
            "list_recipients" => self.list_recipients(arguments).await,
            "create_package" => self.create_package(arguments, key).await,
            "get_package" => self.get_package(arguments).await,
            "update_package" => self.update_package(arguments, key).await,
            "publish_package" => self.publish_package(arguments, key).await,
            "withdraw_package" => self.withdraw_package(arguments, key).await,
            "list_deliveries" => self.list_deliveries(arguments).await,
            "acknowledge_delivery" => self.acknowledge_delivery(arguments, key).await,
            "revoke_delivery" => self.revoke_delivery(arguments, key).await,
            "notify_recipients" => self.notify_recipients(arguments, key).await,
            "publish_content" => self.publish_content(arguments, key).await,
            "replace_package_content" => self.replace_package_content(arguments, key).await,
            other => Err(Error::permanent(
                "unknown_action",
                format!("vip has no action {other:?}"),
            )),
        }
    }
}

/// One method per action; [`Connector::invoke`] picks one by name.
impl VipConnector {
    /// `vip.list_recipients`.
    async fn list_recipients(&self, arguments: &Value) -> Result<Value> {
        let args: ListArgs = parse_arguments(NAME, "list_recipients", arguments)?;
        let answer = self
            .client
            .call(
                &Request::get("/v1/recipients")
                    .query_opt("group_id", args.group_id)
                    .query_opt("cursor", args.cursor)
                    .query_opt("limit", args.limit),
            )
            .await?;
        Ok(
            json!({"recipients": answer["data"].clone(), "next_cursor": answer["next_cursor"].clone()}),
        )
    }

    /// `vip.create_package`.
    async fn create_package(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: CreatePackageArgs = parse_arguments(NAME, "create_package", arguments)?;
        let mut body = json!({"title": args.title, "assets": args.assets});
        for (field, value) in [
            ("metadata", args.metadata),
            ("rights", args.rights),
            ("recipients", args.recipients),
        ] {
            if let Some(value) = value {
                body[field] = value;
            }
        }
        let package = self
            .client
            .call_idempotent(Method::POST, "/v1/packages", body, key)
            .await?;
        package_output(package)
    }

    /// `vip.get_package`.
    async fn get_package(&self, arguments: &Value) -> Result<Value> {
        let args: PackageArgs = parse_arguments(NAME, "get_package", arguments)?;
        let package = self
            .client
            .call(&Request::get(format!(
                "/v1/packages/{}",
                segment(&args.package_id)
            )))
            .await?;
        package_output(package)
    }

    /// `vip.update_package`.
    async fn update_package(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: UpdatePackageArgs = parse_arguments(NAME, "update_package", arguments)?;
        let mut body = json!({});
        if let Some(title) = args.title {
            body["title"] = json!(title);
        }
        for (field, value) in [
            ("metadata", args.metadata),
            ("rights", args.rights),
            ("recipients", args.recipients),
        ] {
            if let Some(value) = value {
                body[field] = value;
            }
        }
        let path = format!("/v1/packages/{}", segment(&args.package_id));
        let package = self
            .client
            .call_idempotent(Method::PATCH, path, body, key)
            .await?;
        package_output(package)
    }

    /// `vip.publish_package`.
    async fn publish_package(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: PackageArgs = parse_arguments(NAME, "publish_package", arguments)?;
        let path = format!("/v1/packages/{}/publish", segment(&args.package_id));
        let answer = self
            .client
            .call_idempotent(Method::POST, path, json!({}), key)
            .await?;
        Ok(json!({"package_id": args.package_id, "deliveries": answer["deliveries"].clone()}))
    }

    /// `vip.withdraw_package`.
    async fn withdraw_package(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: WithdrawArgs = parse_arguments(NAME, "withdraw_package", arguments)?;
        let path = format!("/v1/packages/{}/withdraw", segment(&args.package_id));
        let answer = self
            .client
            .call_idempotent(Method::POST, path, json!({"reason": args.reason}), key)
            .await?;
        let change = LedgerChange::Status(StatusChange {
            status: DeliveryStatus::Withdrawn,
            channel: NAME.to_owned(),
            reference: args.package_id.clone(),
            partner: None,
            receipt: None,
            at: instant(&answer["package"]["withdrawn_at"]),
            detail: Some(json!({"reason": args.reason})),
        });
        Ok(
            json!({"package_id": args.package_id, "status": answer["package"]["status"].clone(),
                  "revoked_deliveries": answer["revoked_deliveries"].clone(), "ledger": [change]}),
        )
    }

    /// `vip.revoke_delivery`.
    async fn revoke_delivery(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: RevokeArgs = parse_arguments(NAME, "revoke_delivery", arguments)?;
        let path = format!("/v1/deliveries/{}/revoke", segment(&args.delivery_id));
        let mut body = json!({});
        if let Some(reason) = &args.reason {
            body["reason"] = json!(reason);
        }
        let delivery = self
            .client
            .call_idempotent(Method::POST, path, body, key)
            .await?;
        let package_id = required(&delivery, "/package_id", "vip delivery")?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let recipient_id = delivery["recipient_id"].as_str().map(str::to_owned);
        let change = LedgerChange::Status(StatusChange {
            status: DeliveryStatus::Withdrawn,
            channel: NAME.to_owned(),
            reference: package_id.clone(),
            partner: recipient_id.clone(),
            receipt: Some(args.delivery_id.clone()),
            at: instant(&delivery["revoked_at"]),
            detail: args.reason.map(|reason| json!({"reason": reason})),
        });
        Ok(
            json!({"delivery_id": args.delivery_id, "package_id": package_id, "recipient_id": recipient_id,
                  "status": delivery["status"].clone(), "revoked_at": delivery["revoked_at"].clone(),
                  "ledger": [change]}),
        )
    }

    /// `vip.list_deliveries`.
    async fn list_deliveries(&self, arguments: &Value) -> Result<Value> {
        let args: ListArgs = parse_arguments(NAME, "list_deliveries", arguments)?;
        let answer = self
            .client
            .call(
                &Request::get("/v1/deliveries")
                    .query_opt("package_id", args.package_id)
                    .query_opt("status", args.status)
                    .query_opt("cursor", args.cursor)
                    .query_opt("limit", args.limit),
            )
            .await?;
        Ok(
            json!({"deliveries": answer["data"].clone(), "next_cursor": answer["next_cursor"].clone()}),
        )
    }

    /// `vip.acknowledge_delivery`.
    async fn acknowledge_delivery(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: AcknowledgeArgs = parse_arguments(NAME, "acknowledge_delivery", arguments)?;
        let path = format!(
            "/v1/deliveries/{}/acknowledgements",
            segment(&args.delivery_id)
        );
        let mut body = json!({"by": args.by});
        if let Some(note) = args.note {
            body["note"] = json!(note);
        }
        let delivery = self
            .client
            .call_idempotent(Method::POST, path, body, key)
            .await?;
        Ok(
            json!({"delivery_id": args.delivery_id, "status": delivery["status"].clone(), "acknowledged_at": delivery["acknowledged_at"].clone()}),
        )
    }
}

impl VipConnector {
    /// `vip.notify_recipients`.
    async fn notify_recipients(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: NotifyArgs = parse_arguments(NAME, "notify_recipients", arguments)?;
        let body = json!({"recipient_ids": args.recipient_ids, "subject": args.subject, "message": args.message});
        let notification = self
            .client
            .call_idempotent(Method::POST, "/v1/notifications", body, key)
            .await?;
        Ok(json!({
            "notification_id": required(&notification, "/id", "vip notification")?,
            "recipient_ids": notification["recipient_ids"].clone(),
        }))
    }
}

/// An instant the platform reported, if it reported one that parses.
fn instant(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    value
        .as_str()
        .and_then(|text| crate::asset::parse_instant(text, false))
}

fn package_output(package: Value) -> Result<Value> {
    let package_id = required(&package, "/id", "vip package")?.clone();
    Ok(json!({"package_id": package_id, "status": package["status"].clone(), "package": package}))
}
