//! gridflow-tests: fixtures for end-to-end suites that drive the real binary or the engine
//! as a user would.
//!
//! - [`Server`] runs the `gridflow` binary on a database and talks to its HTTP API.
//! - [`databases`] lists the backends a suite must cover: a SQLite file always, and a
//!   fresh PostgreSQL database when `DATABASE_URL` is set (CI always sets it; without it the
//!   PostgreSQL cases are skipped with a printed notice).
//! - [`wait_until`] polls a condition with a deadline instead of sleeping and hoping.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// The admin token the test servers accept.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Path of the `gridflow` binary, built first if needed (same profile as this test).
pub fn gridflow_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("GRIDFLOW_BIN") {
        return Ok(PathBuf::from(path));
    }
    // This test runs as target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().context("no current exe")?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("unexpected test binary location")?
        .to_path_buf();
    let binary = profile_dir.join("gridflow");
    let release = profile_dir
        .file_name()
        .is_some_and(|name| name == "release");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "-p", "gridflow", "--bin", "gridflow"]);
    if release {
        build.arg("--release");
    }
    // Building is a no-op when the binary is fresh; it makes the suite self-contained.
    let status = build.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build of the gridflow binary failed");
    }
    Ok(binary)
}

/// A database a suite runs against, dropped at the end.
pub struct TestDatabase {
    /// Backend name for messages.
    pub backend: &'static str,
    /// Connection URL.
    pub url: String,
    _sqlite: Option<gridflow_store::test_util::TempDir>,
    postgres: Option<gridflow_store::test_util::TestDatabase>,
}

impl TestDatabase {
    /// Drops the database (PostgreSQL) or its folder (SQLite).
    pub async fn drop(self) {
        if let Some(postgres) = self.postgres {
            postgres.drop().await;
        }
    }
}

/// A fresh SQLite file, and a fresh PostgreSQL database when `DATABASE_URL` is set.
pub async fn databases() -> Vec<TestDatabase> {
    let (folder, url) = gridflow_store::test_util::sqlite_file();
    let mut databases = vec![TestDatabase {
        backend: "sqlite",
        url,
        _sqlite: Some(folder),
        postgres: None,
    }];
    if let Some(postgres) = gridflow_store::test_util::postgres_database().await {
        databases.push(TestDatabase {
            backend: "postgres",
            url: postgres.url.clone(),
            _sqlite: None,
            postgres: Some(postgres),
        });
    }
    databases
}

/// Runs `case` on every database of [`databases`], naming the backend in a failure, and
/// drops each database afterwards.
pub async fn on_every_database<F, Fut>(mut case: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for database in databases().await {
        let backend = database.backend;
        let outcome = case(database.url.clone()).await;
        database.drop().await;
        outcome.with_context(|| format!("on {backend}"))?;
    }
    Ok(())
}

/// Polls `condition` until it yields `Some`, or fails after `timeout`.
pub async fn wait_until<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut condition: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A running `gridflow serve` process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    client: reqwest::Client,
}

impl Server {
    /// Starts `gridflow serve` on `database_url` on a free loopback port.
    pub fn start(database_url: &str) -> anyhow::Result<Self> {
        Self::start_with_env(database_url, &[])
    }

    /// Starts `gridflow serve` like [`Server::start`], with extra environment variables
    /// (the cron scheduler's `GRIDFLOW_CRON_LEASE`, event secrets, …).
    pub fn start_with_env(database_url: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut command = Command::new(gridflow_binary()?);
        if !database_url.starts_with("sqlite") {
            // SQLite keeps its audit key beside the database file; a PostgreSQL server
            // would write ./gridflow.key into the source tree.
            let database = database_url.rsplit('/').next().unwrap_or("db");
            command.env(
                "GRIDFLOW_AUDIT_KEY",
                std::env::temp_dir().join(format!("gridflow-test-{database}.key")),
            );
        }
        let mut child = command
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("GRIDFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start gridflow serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the listening line")?;
        let url = line
            .trim()
            .strip_prefix("gridflow listening on ")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        Ok(Self {
            child,
            url,
            client: reqwest::Client::new(),
        })
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().context("kill")?;
        self.child.wait().context("wait")?;
        Ok(())
    }

    /// Sends a request with the admin token; returns status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(ADMIN_TOKEN);
        request = match body {
            Some(Body::Json(json)) => request.json(&json),
            Some(Body::Text(text)) => request.body(text),
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{path} answered {text}"))?
        };
        Ok((status, json))
    }

    /// `GET` that must answer 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// `POST` that must answer 2xx.
    pub async fn post(&self, path: &str, body: Body) -> anyhow::Result<Value> {
        let (status, answer) = self.call(reqwest::Method::POST, path, Some(body)).await?;
        if !(200..300).contains(&status) {
            bail!("POST {path} answered {status}: {answer}");
        }
        Ok(answer)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request body.
pub enum Body {
    /// Sent as JSON.
    Json(Value),
    /// Sent as text (definitions in YAML).
    Text(String),
}
