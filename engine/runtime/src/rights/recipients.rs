//! The recipients of a rights window: the partners that hold a delivery of the asset, as
//! the `recipients` of a rights trigger's `event`.

use serde_json::Value;

use crate::error::Result;
use crate::shared::Shared;

/// The partners that hold a delivery of the asset, for the `recipients` of a rights
/// trigger's `event`: one JSON object per held delivery (delivered, downloaded or
/// acknowledged; not withdrawn, superseded or failed), oldest first, as `ledger.recipients`
/// reports them.
pub(crate) async fn recipients_of(
    shared: &Shared,
    system: &str,
    asset_id: &str,
) -> Result<Vec<Value>> {
    let filter = gridflow_store::LedgerFilter {
        system: Some(system.to_owned()),
        asset_id: Some(asset_id.to_owned()),
        statuses: gridflow_core::audit::ledger::Status::HELD.to_vec(),
        ..gridflow_store::LedgerFilter::default()
    };
    Ok(crate::ledger::list_recipients(shared.store.as_ref(), &filter).await?)
}
