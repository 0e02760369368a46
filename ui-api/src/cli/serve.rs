//! The arguments of `serve` and `sandbox`, which `main.rs` runs (it names the concrete
//! store), and the defaults they derive: the configuration file and the audit key file.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

/// The database of `serve` when neither `--database-url` nor the environment names one.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://gridflow.db?mode=rwc";
/// The address `serve` listens on by default.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Arguments of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The database: `sqlite://FILE?mode=rwc` or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "GRIDFLOW_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        // The URL may carry a password: never show the environment's value in --help.
        hide_env_values = true
    )]
    pub database_url: String,
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, default_value = DEFAULT_BIND)]
    pub bind: String,
    /// Run the connectors against their local simulators, started with the server.
    #[arg(long)]
    pub sandbox: bool,
    /// The connector configuration (`gridflow.toml`); without this option, `gridflow.toml`
    /// in the working directory is read when it exists.
    #[arg(long, env = "GRIDFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQLite only: `full` syncs every commit to disk, `normal` only at checkpoints
    /// (faster; the last commits may be lost on a power loss, not on a crash).
    #[arg(long, value_enum, default_value_t = SqliteSync::Full)]
    pub sqlite_synchronous: SqliteSync,
    /// The file of the Ed25519 key that signs audit checkpoints, created (mode 0600) on
    /// first start. Default: beside the SQLite file (`gridflow.db` → `gridflow.key`), or
    /// `./gridflow.key` for PostgreSQL.
    #[arg(long, env = "GRIDFLOW_AUDIT_KEY")]
    pub audit_key: Option<PathBuf>,
    /// How often to sign an audit checkpoint (`30s`, `5m`, `1h`); `0` signs only on demand
    /// (`POST /api/v1/audit/checkpoints`).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: std::time::Duration,
}

/// The default audit key file for a database URL: beside a SQLite file, with the
/// extension `.key`; `./gridflow.key` otherwise.
pub fn default_audit_key(database_url: &str) -> PathBuf {
    let sqlite = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or_default())
        .filter(|path| !path.is_empty() && !path.contains(":memory:"));
    match sqlite {
        Some(path) => Path::new(path).with_extension("key"),
        None => PathBuf::from("gridflow.key"),
    }
}

/// The default content store folder for a database URL: `gridflow-content` beside a
/// SQLite file; `./gridflow-content` otherwise.
pub fn default_content_dir(database_url: &str) -> PathBuf {
    let name = gridflow_connectors::config::DEFAULT_CONTENT_DIR_NAME;
    match default_audit_key(database_url).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(name),
        _ => PathBuf::from(name),
    }
}

/// Arguments of `sandbox`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// The configuration whose `[sandbox] state_dir` keeps the simulators' state; as for
    /// `serve`, `gridflow.toml` is read when it exists.
    #[arg(long, env = "GRIDFLOW_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The configuration file that `serve` and `sandbox` read: the one named, else
/// `gridflow.toml` when it exists; `None` means no file (nothing configured).
pub fn config_path(named: Option<&Path>) -> Option<PathBuf> {
    match named {
        Some(path) => Some(path.to_owned()),
        None => {
            let default = PathBuf::from(gridflow_connectors::config::DEFAULT_FILE);
            default.exists().then_some(default)
        }
    }
}

/// `--sqlite-synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSync {
    /// Sync every commit.
    Full,
    /// Sync at WAL checkpoints.
    Normal,
}
