//! `gridflow ledger [--asset A] [--version V] [--partner P] [--status S] [--system S]
//! [--channel C] [--json]`: the distribution ledger of a server (`GET /api/v1/ledger`),
//! newest delivery first, as a table or as the page's JSON; `gridflow ledger --id ID`
//! shows one delivery with its entries.

use clap::Args;
use serde_json::Value;

use crate::cli::args::ServerArgs;
use crate::client::{Client, ClientError};
use crate::output;

/// Arguments of `gridflow ledger`.
#[derive(Debug, Clone, Args)]
pub struct LedgerArgs {
    /// Only this asset id.
    #[arg(long)]
    pub asset: Option<String>,
    /// Only this version of it.
    #[arg(long)]
    pub version: Option<String>,
    /// Only deliveries to this partner.
    #[arg(long)]
    pub partner: Option<String>,
    /// Only deliveries whose status is one of these (comma-separated: delivered,
    /// downloaded, acknowledged, failed, superseded, withdrawn).
    #[arg(long)]
    pub status: Option<String>,
    /// Only assets of this system.
    #[arg(long)]
    pub system: Option<String>,
    /// Only deliveries through this channel.
    #[arg(long)]
    pub channel: Option<String>,
    /// One delivery, with its hash-chained entries (as JSON).
    #[arg(long, conflicts_with_all = ["asset", "version", "partner", "status", "system", "channel", "cursor"])]
    pub id: Option<String>,
    /// Continue from a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Page size (1 to the server's `limits.max_page_size`, 500 by default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: Option<u32>,
    /// Print the page as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gridflow ledger`.
pub async fn list(client: &Client, args: &LedgerArgs) -> Result<(), ClientError> {
    if let Some(id) = &args.id {
        output::json(&client.get(&["ledger", id], &[]).await?);
        return Ok(());
    }
    let limit = args.limit.map(|limit| limit.to_string());
    let query: Vec<(&str, &str)> = [
        ("asset", args.asset.as_deref()),
        ("version", args.version.as_deref()),
        ("partner", args.partner.as_deref()),
        ("status", args.status.as_deref()),
        ("system", args.system.as_deref()),
        ("channel", args.channel.as_deref()),
        ("cursor", args.cursor.as_deref()),
        ("limit", limit.as_deref()),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.map(|value| (key, value)))
    .collect();
    let page = client.get(&["ledger"], &query).await?;
    if args.json {
        output::json(&page);
        return Ok(());
    }
    for line in table(&page) {
        output::line(line);
    }
    Ok(())
}

const HEADERS: [&str; 8] = [
    "DELIVERED",
    "ASSET",
    "VERSION",
    "PARTNER",
    "CHANNEL",
    "REFERENCE",
    "STATUS",
    "INSTANCE",
];

/// The text form of a page: a header, one row per delivery, then the next cursor.
fn table(page: &Value) -> Vec<String> {
    let text = |item: &Value, key: &str| match item.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let rows: Vec<[String; 8]> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            [
                text(item, "delivered_at"),
                format!("{}:{}", text(item, "system"), text(item, "asset_id")),
                text(item, "version"),
                text(item, "partner"),
                text(item, "channel"),
                text(item, "reference"),
                text(item, "status"),
                text(item, "instance_id"),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let format_row = |cells: [&str; 8]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut lines = vec![format_row(HEADERS)];
    lines.extend(
        rows.iter()
            .map(|row| format_row(row.each_ref().map(String::as_str))),
    );
    if let Some(next) = page.get("next_cursor").and_then(Value::as_str) {
        lines.push(format!("next page: --cursor {next}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_delivery_is_one_row_and_the_cursor_follows() {
        let page = json!({"items": [{
            "delivered_at": "2026-12-07T09:00:00Z", "system": "otmm", "asset_id": "a-1",
            "version": "2", "partner": "GC1", "channel": "vip", "reference": "pkg-1",
            "status": "downloaded", "instance_id": "i-1"
        }], "next_cursor": "c"});
        let lines = table(&page);
        assert!(lines[0].starts_with("DELIVERED"));
        assert!(
            lines[1].contains("otmm:a-1") && lines[1].contains("downloaded"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], "next page: --cursor c");
    }
}
