//! What every client command shares: where the server is ([`ServerArgs`]), the
//! environment variable of the token, and [`parse_json`], the parser of JSON arguments.
//! A leaf: each command group reads it; it reads none of them.

use clap::Args;
use serde_json::Value;

/// The server the client commands call by default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// The environment variable that holds the client commands' token.
pub const TOKEN_VARIABLE: &str = "GRIDFLOW_TOKEN";

/// Where the client commands send their calls.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The server's base URL. The token comes from the environment variable GRIDFLOW_TOKEN.
    #[arg(long, env = "GRIDFLOW_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
}

/// Parses a JSON argument (`--input`, `--data`); a usage error names what is wrong.
pub fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not valid JSON: {error}"))
}
