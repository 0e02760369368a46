//! `ledger.deliveries`: every delivery the distribution ledger holds for a period (by the
//! instant it was delivered), with what became of it (current status, first download,
//! first acknowledgement), so that a delivery audit report reads one period at once
//! rather than asset by asset.
//!
//! The store lists deliveries newest first; the reading stops at the first one delivered
//! before the period. At most [`MAX_DELIVERIES`] are answered, oldest first; `truncated`
//! says when the period held more (a report then narrows by partner, channel or system).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use gridflow_connectors::Error;
use gridflow_core::audit::ledger::{Delivery, Status};
use gridflow_store::{LedgerFilter, Store};

/// Deliveries read per page.
const PAGE: u32 = 500;

/// The most deliveries one call answers.
pub(crate) const MAX_DELIVERIES: usize = 5000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesArguments {
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    partner: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    status: Option<Vec<Status>>,
}

/// `ledger.deliveries` with `arguments`, read from `store`.
pub(crate) async fn deliveries(store: &dyn Store, arguments: Value) -> Result<Value, Error> {
    let arguments: DeliveriesArguments = serde_json::from_value(arguments)
        .map_err(|error| Error::invalid_arguments(format!("ledger.deliveries: {error}")))?;
    if arguments.until <= arguments.from {
        return Err(Error::invalid_arguments(format!(
            "ledger.deliveries: until ({}) must be after from ({})",
            arguments.until, arguments.from
        )));
    }
    let filter = LedgerFilter {
        system: arguments.system,
        partner: arguments.partner,
        channel: arguments.channel,
        statuses: arguments.status.unwrap_or_default(),
        ..LedgerFilter::default()
    };
    let (rows, truncated) = in_period(store, &filter, arguments.from, arguments.until)
        .await
        .map_err(|error| match error {
            gridflow_store::Error::Unavailable { message, .. } => {
                Error::retryable("unavailable", message)
            }
            other => Error::permanent("ledger", other.to_string()),
        })?;
    let deliveries: Vec<Value> = rows.iter().map(row).collect();
    Ok(json!({"deliveries": deliveries, "truncated": truncated}))
}

/// The deliveries `filter` selects that were delivered in `[from, until)`, oldest first,
/// and whether there were more than [`MAX_DELIVERIES`].
async fn in_period(
    store: &dyn Store,
    filter: &LedgerFilter,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> gridflow_store::Result<(Vec<Delivery>, bool)> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_deliveries(filter, cursor.as_deref(), PAGE)
            .await?;
        for delivery in page.items {
            if delivery.delivered_at < from {
                found.reverse();
                return Ok((found, false));
            }
            if delivery.delivered_at >= until {
                continue;
            }
            if found.len() == MAX_DELIVERIES {
                // The oldest ones are left out: the newest MAX_DELIVERIES, oldest first.
                found.reverse();
                return Ok((found, true));
            }
            found.push(delivery);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => {
                found.reverse();
                return Ok((found, false));
            }
        }
    }
}

/// One delivery as the action answers it.
fn row(delivery: &Delivery) -> Value {
    let facts = &delivery.facts;
    json!({
        "delivery_id": delivery.delivery_id,
        "system": facts.system,
        "asset_id": facts.asset_id,
        "version": facts.version,
        "sha256": facts.sha256,
        "partner": facts.partner,
        "channel": facts.channel,
        "reference": facts.reference,
        "receipt": facts.receipt,
        "instance_id": facts.instance_id.as_ref().map(ToString::to_string),
        "step": facts.step,
        "status": delivery.status,
        "delivered_at": delivery.delivered_at,
        "status_at": delivery.status_at,
        "downloaded_at": delivery.downloaded_at,
        "acknowledged_at": delivery.acknowledged_at,
    })
}
