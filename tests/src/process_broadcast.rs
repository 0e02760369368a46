//! Extensions of [`crate::process::Sandbox`] for the broadcast and delivery audit
//! processes: what a VIP recipient (an affiliate, a distributor) does in VIP, and what
//! VIP's own books say.
//!
//! VIP's routes sit behind its OAuth client credentials even for a recipient's own
//! actions (its portal holds them), so a recipient's call here takes a token first, as
//! the portal would, and names the recipient in `X-Recipient-Id` where VIP asks for it
//! (downloads).

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::Value;

use gridflow_connectors::simulator::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET};

use crate::process::{DEADLINE, Sandbox};
use crate::wait_until;

/// Calls the VIP simulator at `path` (`/v1/...`) through its portal's client
/// credentials, as recipient `recipient` when one is named; answers the status and the
/// JSON body.
pub async fn vip_call(
    sandbox: &Sandbox,
    recipient: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let base = sandbox.simulator_url("vip");
    let client = reqwest::Client::new();
    let token: Value = client
        .post(format!("{base}/v1/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SANDBOX_CLIENT_ID),
            ("client_secret", SANDBOX_CLIENT_SECRET),
        ])
        .send()
        .await
        .context("asking VIP for a token")?
        .json()
        .await?;
    let bearer = token["access_token"]
        .as_str()
        .with_context(|| format!("VIP answered no token: {token}"))?;
    let mut request = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(bearer);
    if let Some(recipient) = recipient {
        request = request.header("X-Recipient-Id", recipient);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("calling VIP {path}"))?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Recipient `recipient` acknowledges VIP delivery `delivery_id` (`by` the person, with a
/// note), as it does in VIP's portal; must answer 2xx.
pub async fn vip_acknowledge(
    sandbox: &Sandbox,
    recipient: &str,
    delivery_id: &str,
    by: &str,
    note: &str,
) -> anyhow::Result<Value> {
    let path = format!("/v1/deliveries/{delivery_id}/acknowledgements");
    let body = serde_json::json!({"by": by, "note": note});
    let (status, answer) =
        vip_call(sandbox, Some(recipient), Method::POST, &path, Some(body)).await?;
    ensure!(
        (200..300).contains(&status),
        "{recipient} acknowledging {delivery_id} answered {status}: {answer}"
    );
    Ok(answer)
}

/// Recipient `recipient` downloads VIP delivery `delivery_id`; must answer 2xx.
pub async fn vip_download(
    sandbox: &Sandbox,
    recipient: &str,
    delivery_id: &str,
) -> anyhow::Result<Value> {
    let path = format!("/v1/deliveries/{delivery_id}/download");
    let (status, answer) = vip_call(sandbox, Some(recipient), Method::GET, &path, None).await?;
    ensure!(
        (200..300).contains(&status),
        "{recipient} downloading {delivery_id} answered {status}"
    );
    Ok(answer)
}

/// VIP's state as its simulator persisted it (`recipients`, `packages`, `deliveries`,
/// `notifications`, ...).
pub fn vip_state(sandbox: &Sandbox) -> anyhow::Result<Value> {
    Ok(sandbox.records("vip")?["state"].clone())
}

/// The value(s) of metadata field `field` of iconik asset `asset_id`, as the DAM holds
/// them after the process (every view).
pub fn iconik_field(sandbox: &Sandbox, asset_id: &str, field: &str) -> anyhow::Result<Vec<Value>> {
    let records = sandbox.records("iconik")?;
    let views = records["state"]["metadata"][asset_id]
        .as_object()
        .with_context(|| format!("iconik holds no metadata of {asset_id}"))?;
    Ok(views
        .values()
        .flat_map(|view| {
            view["metadata_values"][field]["field_values"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|value| value["value"].clone())
        .collect())
}

/// Waits until instance `id`'s history (as the auditor reads it) holds `count` received
/// signals: a partner's acknowledgement reached its wait.
pub async fn signals_received(sandbox: &Sandbox, id: &str, count: usize) -> anyhow::Result<()> {
    wait_until(
        DEADLINE,
        &format!("{count} signals received by {id}"),
        || async {
            let received = sandbox
                .history(id)
                .await?
                .iter()
                .filter(|event| event["type"] == "signal_received")
                .count();
            Ok((received >= count).then_some(()))
        },
    )
    .await
}
