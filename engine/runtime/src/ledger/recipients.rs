//! The built-in `ledger` connector: `ledger.recipients`, the partners that hold (or held)
//! an asset according to the distribution ledger, so that a version-change notice or a
//! recall takes its recipient list from it.
//!
//! It needs the store, so the runtime registers it when the engine starts (it is listed
//! by `GET /connectors` and validated like any other); it reads, and never writes.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use gridflow_connectors::ledger::{DESCRIPTION, NAME};
use gridflow_connectors::{ActionSpec, Connector, Error, Invocation, Registry};
use gridflow_core::audit::ledger::Status;
use gridflow_store::{LedgerFilter, Store};

/// Deliveries read per page while collecting recipients.
const PAGE: u32 = 500;

/// The `ledger` connector, reading the engine's store.
pub(crate) struct LedgerConnector {
    store: Arc<dyn Store>,
    actions: Vec<ActionSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientsArguments {
    system: String,
    asset_id: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    status: Option<Vec<Status>>,
}

impl LedgerConnector {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            actions: gridflow_connectors::ledger::actions(),
        }
    }

    async fn recipients(&self, arguments: Value) -> Result<Value, Error> {
        let arguments: RecipientsArguments = serde_json::from_value(arguments)
            .map_err(|error| Error::invalid_arguments(format!("ledger.recipients: {error}")))?;
        let filter = LedgerFilter {
            system: Some(arguments.system),
            asset_id: Some(arguments.asset_id),
            version: arguments.version,
            statuses: arguments.status.unwrap_or_else(|| Status::HELD.to_vec()),
            ..LedgerFilter::default()
        };
        let recipients = list_recipients(self.store.as_ref(), &filter)
            .await
            .map_err(|error| match error {
                gridflow_store::Error::Unavailable { message, .. } => {
                    Error::retryable("unavailable", message)
                }
                other => Error::permanent("ledger", other.to_string()),
            })?;
        Ok(json!({ "recipients": recipients }))
    }
}

/// Every delivery `filter` selects, oldest first, as a recipient: what
/// `ledger.recipients` outputs and a rights trigger's `event.recipients` holds.
pub(crate) async fn list_recipients(
    store: &dyn Store,
    filter: &LedgerFilter,
) -> gridflow_store::Result<Vec<Value>> {
    let mut recipients = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_deliveries(filter, cursor.as_deref(), PAGE)
            .await?;
        recipients.extend(page.items.into_iter().map(|delivery| {
            json!({
                "delivery_id": delivery.delivery_id,
                "partner": delivery.facts.partner,
                "channel": delivery.facts.channel,
                "reference": delivery.facts.reference,
                "receipt": delivery.facts.receipt,
                "version": delivery.facts.version,
                "sha256": delivery.facts.sha256,
                "status": delivery.status,
                "delivered_at": delivery.delivered_at,
            })
        }));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // Oldest delivery first: the order partners received the asset in.
    recipients.reverse();
    Ok(recipients)
}

#[async_trait]
impl Connector for LedgerConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        DESCRIPTION
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    async fn invoke(&self, invocation: Invocation) -> gridflow_connectors::Result<Value> {
        match invocation.action.as_str() {
            "recipients" => self.recipients(invocation.arguments).await,
            "deliveries" => {
                super::deliveries::deliveries(self.store.as_ref(), invocation.arguments).await
            }
            other => Err(Error::permanent(
                "unknown_action",
                format!("ledger.{other} is not an action of the ledger connector"),
            )),
        }
    }
}

/// `registry` with the `ledger` connector added (a copy: the caller's registry may be
/// shared), unless it already has one of that name.
pub(crate) fn with_ledger(registry: Arc<Registry>, store: Arc<dyn Store>) -> Arc<Registry> {
    if registry
        .connectors()
        .any(|connector| connector.name() == NAME)
    {
        return registry;
    }
    let mut extended = Registry::new();
    for connector in registry.connectors() {
        extended.register(connector.clone());
    }
    extended.register(Arc::new(LedgerConnector::new(store)));
    Arc::new(extended)
}
