//! `gridflow token create|list|revoke` (admin only): the client side of `/api/v1/tokens`.

use std::str::FromStr;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::cli::args::ServerArgs;
use crate::client::{Client, ClientError};
use crate::http::role::Role;
use crate::output;

/// `gridflow token …`.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token for a user; prints the token on stdout, once (only its hash is kept).
    Create {
        /// What the token allows: analyst, approver, auditor or admin.
        #[arg(long, value_parser = Role::from_str)]
        role: Role,
        /// The user the token names (recorded in history as the actor).
        #[arg(long)]
        user: String,
        /// A group of the user (repeat for several), for approval assignment.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// How long the token is valid (`30d`, `12h`); the server's default lifetime
        /// (`[tokens] default_lifetime`) when absent.
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List tokens: id, user, role, groups, created, expires, state (never the tokens).
    List {
        /// Print the tokens as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by its id (from `token list`); it is refused from now on.
    Revoke {
        /// The token's id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

impl TokenAction {
    /// Where the command sends its calls.
    pub fn server(&self) -> &ServerArgs {
        match self {
            TokenAction::Create { server, .. }
            | TokenAction::List { server, .. }
            | TokenAction::Revoke { server, .. } => server,
        }
    }
}

/// Runs a token command.
pub async fn run(client: &Client, action: TokenAction) -> Result<(), ClientError> {
    match action {
        TokenAction::Create {
            role,
            user,
            groups,
            expires_in,
            ..
        } => {
            let mut body = json!({ "user": user, "role": role, "groups": groups });
            if let Some(expires_in) = expires_in {
                body["expires_in"] = json!(expires_in);
            }
            let answer = client.post_json(&["tokens"], &body).await?;
            match answer.get("token").and_then(Value::as_str) {
                // The token alone on stdout, so that `$(gridflow token create …)` captures
                // it; what it names goes to stderr.
                Some(token) => {
                    output::line(token);
                    output::error_line(format!(
                        "token {} for user {user} (role {role}{}), expires {}; it is shown only this once",
                        text(&answer, "id"),
                        if groups.is_empty() {
                            String::new()
                        } else {
                            format!(", groups {}", groups.join(", "))
                        },
                        text(&answer, "expires_at"),
                    ));
                }
                None => output::json(&answer),
            }
        }
        TokenAction::List { json, .. } => {
            let mut items = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let query: Vec<(&str, &str)> = cursor
                    .as_deref()
                    .map(|cursor| ("cursor", cursor))
                    .into_iter()
                    .chain([("limit", "500")])
                    .collect();
                let page = client.get(&["tokens"], &query).await?;
                if let Some(page_items) = page.get("items").and_then(Value::as_array) {
                    items.extend(page_items.iter().cloned());
                }
                cursor = page
                    .get("next_cursor")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
            if json {
                output::json(&Value::Array(items));
            } else {
                token_table(&items);
            }
        }
        TokenAction::Revoke { id, .. } => {
            let answer = client.delete(&["tokens", &id]).await?;
            output::error_line(format!(
                "token {} of user {} revoked",
                text(&answer, "id"),
                text(&answer, "user")
            ));
        }
    }
    Ok(())
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// One line per token, under a header.
fn token_table(items: &[Value]) {
    output::line(format!(
        "{:<36}  {:<16}  {:<8}  {:<20}  {:<20}  {:<8}  GROUPS",
        "ID", "USER", "ROLE", "CREATED", "EXPIRES", "STATE"
    ));
    for item in items {
        let instant = |key: &str| text(item, key).chars().take(19).collect::<String>();
        let state = if item.get("revoked").and_then(Value::as_bool) == Some(true) {
            "revoked"
        } else if item.get("sandbox").and_then(Value::as_bool) == Some(true) {
            "sandbox"
        } else {
            "active"
        };
        let groups: Vec<&str> = item
            .get("groups")
            .and_then(Value::as_array)
            .map(|groups| groups.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        output::line(format!(
            "{:<36}  {:<16}  {:<8}  {:<20}  {:<20}  {:<8}  {}",
            text(item, "id"),
            text(item, "user"),
            text(item, "role"),
            instant("created_at"),
            instant("expires_at"),
            state,
            groups.join(",")
        ));
    }
}
