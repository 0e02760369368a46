//! The recipients of a rights window: the partners that hold a delivery of the asset, as
//! the `recipients` of a rights trigger's `event`.

use serde_json::Value;

use crate::error::Result;
use crate::shared::Shared;

/// The partners that hold a delivery of the asset, for the `recipients` of a rights
/// trigger's `event`: one JSON object per recipient.
///
/// For now it returns an empty list: the distribution ledger is being built beside this
/// room, and the lead wires it here (each held delivery of `asset_id` of `system`, as the
/// `ledger.recipients` action reports them).
pub(crate) async fn recipients_of(
    shared: &Shared,
    system: &str,
    asset_id: &str,
) -> Result<Vec<Value>> {
    let _ = (shared, system, asset_id);
    Ok(Vec::new())
}
