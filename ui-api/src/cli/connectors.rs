//! `gridflow connectors [--json]`: the catalogue of a server (`GET /api/v1/connectors`),
//! each connector with its actions and the events its system emits, as definitions name
//! them (`trading_grid.open_issue`, `trading_grid.post_acknowledged`).

use clap::Args;
use serde_json::Value;

use crate::cli::args::ServerArgs;
use crate::client::{Client, ClientError};
use crate::output;

/// Arguments of `gridflow connectors`.
#[derive(Debug, Clone, Args)]
pub struct ConnectorsArgs {
    /// Print the whole catalogue as JSON, with the argument, output and payload schemas.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gridflow connectors`: per connector, its description, then one line per action and
/// per event with its full name and description.
pub async fn list(client: &Client, args: &ConnectorsArgs) -> Result<(), ClientError> {
    let catalogue = client.get(&["connectors"], &[]).await?;
    if args.json {
        output::json(&catalogue);
        return Ok(());
    }
    for line in lines(&catalogue) {
        output::line(line);
    }
    Ok(())
}

/// The text form of a catalogue.
fn lines(catalogue: &Value) -> Vec<String> {
    let text = |value: &Value, key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut lines = Vec::new();
    for item in catalogue["items"].as_array().into_iter().flatten() {
        let name = text(item, "name");
        lines.push(format!("{name}  {}", text(item, "description")));
        for (kind, key) in [("action", "actions"), ("event", "events")] {
            for entry in item[key].as_array().into_iter().flatten() {
                lines.push(format!(
                    "  {kind:<6} {name}.{}  {}",
                    text(entry, "name"),
                    text(entry, "description")
                ));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_action_and_event_is_one_line_with_its_full_name() {
        let catalogue = json!({"items": [{
            "name": "trading_grid", "description": "The hub.",
            "actions": [{"name": "open_issue", "description": "Open an issue.", "arguments": {}, "output": {}}],
            "events": [{"name": "post_acknowledged", "description": "A partner acknowledged.", "payload": {}}]
        }]});
        assert_eq!(
            lines(&catalogue),
            [
                "trading_grid  The hub.",
                "  action trading_grid.open_issue  Open an issue.",
                "  event  trading_grid.post_acknowledged  A partner acknowledged.",
            ]
        );
    }
}
