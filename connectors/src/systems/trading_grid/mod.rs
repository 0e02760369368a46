//! The `trading_grid` connector: OpenText Business Network.
//!
//! It speaks the OAuth token service (`POST /v1/oauth2/tokens?grant_type=client_credentials`
//! with the consumer key and secret as HTTP Basic) and Community Management
//! (`/TGCommunityServices/v1/companies/{companyId}/partnerDirectory`) as OpenText
//! publishes them \[V\], and the partner-hub operations OpenText exposes no API for on our
//! `/hub/v1` design \[D\] (`trading-grid.md`). Tokens (about 10 h) are cached and
//! refreshed on 401. State-changing hub requests carry the action's `Idempotency-Key`
//! \[D\]. Error messages come from the Cartographer shape (`message`) or the gateway's
//! `fault.faultstring`.
//!
//! Rooms: `actions` (directory, messaging, issues, acknowledgements), `publish` (content
//! by digest: documents, posts, withdrawals), `requests` (partner requests, groups), `library` (the communities' library entries),
//! `specs` (the catalogue), `events` and `inbound` (the events, the hub's signed
//! callbacks and what events mean for the ledger), `feed` (the poller's change feed).

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;

use crate::config::TradingGridConfig;
use crate::connector::{
    ActionSpec, Connector, Error, EventEffects, InboundEvent, Invocation, Result,
};
use crate::http::Secret;
use crate::rest::{Request, RestClient, TokenSource, required};

mod actions;
mod events;
pub mod feed;
mod inbound;
mod library;
mod publish;
mod requests;
mod specs;

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
        )?
        .with_idempotency_header(IDEMPOTENCY_HEADER);
        Ok(Self {
            client,
            company_id: config.company_id.clone(),
            actions: specs::action_specs(),
            content: crate::content::ContentStore::scratch(),
            poll_interval: config.poll_interval,
        })
    }
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
        "OpenText Trading Grid: the partner directory and the partner hub (communities, groups, content posts and their withdrawal, notifications, issues, partner requests, acknowledgements)."
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
            "get_issue" => self.get_issue(arguments).await,
            "publish_content" => self.publish_content(arguments, key).await,
            "withdraw_post" => self.withdraw_post(arguments, key).await,
            "withdraw_document" => self.withdraw_document(arguments, key).await,
            "get_post" => self.get_post(arguments).await,
            "get_request" => self.get_request(arguments).await,
            "list_requests" => self.list_requests(arguments).await,
            "answer_request" => self.answer_request(arguments, key).await,
            "close_request" => self.close_request(arguments, key).await,
            "create_group" => self.create_group(arguments, key).await,
            "add_group_members" => self.change_group_members(arguments, key, true).await,
            "remove_group_members" => self.change_group_members(arguments, key, false).await,
            "put_library_entry" => self.put_library_entry(arguments, key).await,
            "list_library_entries" => self.list_library_entries(arguments).await,
            other => Err(Error::permanent(
                "unknown_action",
                format!("trading_grid has no action {other:?}"),
            )),
        }
    }

    fn read_webhook(&self, body: &Value) -> Option<Result<InboundEvent>> {
        Some(inbound::read_callback(body))
    }

    fn event_effects(&self, event: &str, payload: &Value) -> EventEffects {
        inbound::event_effects(event, payload)
    }
}
