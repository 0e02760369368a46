//! gridflow-tests: fixtures for end-to-end suites that drive the real binary or the engine
//! as a user would.
//!
//! - [`Server`] runs the `gridflow` binary on a database and talks to its HTTP API,
//!   optionally keeping every line it writes ([`Server::start_captured`]).
//! - [`databases`] lists the backends a suite must cover: a SQLite file always, and a
//!   fresh PostgreSQL database when `DATABASE_URL` is set (CI always sets it; without it the
//!   PostgreSQL cases are skipped with a printed notice).
//! - [`wait_until`] polls a condition with a deadline instead of sleeping and hoping;
//!   [`wait_for_status`] waits so for an instance of an in-process engine.
//! - [`engine_on`] starts an in-process engine on a database URL, [`engine_with_store`]
//!   on a store of the suite's own.
//! - [`assert_replay_matches`] checks that an instance's replayed history equals its
//!   stored state.
//! - [`cluster::PgCluster`]: a PostgreSQL cluster of the test's own, to stop and start.
//! - [`process::Sandbox`]: `serve --sandbox` as the bundled processes' suites drive it.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use serde_json::Value;

pub mod cluster;
mod engine;
pub mod process;
pub mod process_issues;
mod replay;
mod wait;

pub use engine::{engine_on, engine_with_limits, engine_with_store};
pub use replay::assert_replay_matches;
pub use wait::{wait_for_status, wait_until};

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
    // Cargo gives this test process the variables of its own package (CARGO_MANIFEST_DIR,
    // CARGO_PKG_NAME, …). Build scripts that watch them (ring's does) would see them change
    // from the outer build's values and rebuild half the tree on every run; the inner build
    // must see the environment the outer cargo saw.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if is_package_variable(name) {
            build.env_remove(name);
        }
    }
    // Building is a no-op when the binary is fresh; it makes the suite self-contained.
    let status = build.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build of the gridflow binary failed");
    }
    Ok(binary)
}

/// Whether `name` is one of the variables cargo sets for a test of one package, not one
/// of the caller's (`CARGO`, `CARGO_HOME` and `CARGO_TARGET_DIR` stay).
fn is_package_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || name.starts_with("CARGO_BIN_EXE_")
        || matches!(
            name,
            "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
        )
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

/// A running `gridflow serve` process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    client: reqwest::Client,
    /// Every line the process wrote, when started with [`Server::start_captured`].
    output: Option<CapturedOutput>,
}

/// Which stream a captured line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error (log lines and start-up notices).
    Stderr,
}

/// The lines a server wrote, collected by one reader thread per stream.
struct CapturedOutput {
    lines: Arc<Mutex<Vec<(Stream, String)>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl CapturedOutput {
    fn snapshot(&self) -> Vec<(Stream, String)> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Reads `reader` line by line into `lines` until the process closes it.
fn collect_lines(
    stream: Stream,
    reader: impl std::io::Read + Send + 'static,
    lines: Arc<Mutex<Vec<(Stream, String)>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((stream, line));
        }
    })
}

impl Server {
    /// Starts `gridflow serve` on `database_url` on a free loopback port.
    pub fn start(database_url: &str) -> anyhow::Result<Self> {
        Self::start_with_env(database_url, &[])
    }

    /// Starts `gridflow serve` like [`Server::start`], with extra environment variables
    /// (the cron scheduler's `GRIDFLOW_CRON_LEASE`, event secrets, …).
    pub fn start_with_env(database_url: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::spawn(database_url, &[], env, false)
    }

    /// Starts `gridflow serve` with extra arguments (`--sandbox`, `--config FILE`, `--bind
    /// ADDRESS` instead of a free port) and
    /// environment variables, keeping every line it writes to stdout and stderr (see
    /// [`Server::output`]); stderr is not shown.
    pub fn start_captured(
        database_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::spawn(database_url, args, env, true)
    }

    fn spawn(
        database_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
        capture: bool,
    ) -> anyhow::Result<Self> {
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
        command.arg("serve");
        if !args.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(["--database-url", database_url])
            .args(args)
            .env("GRIDFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(if capture {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .context("cannot start gridflow serve")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if capture {
            let stderr = child.stderr.take().context("no stderr")?;
            readers.push(collect_lines(Stream::Stderr, stderr, lines.clone()));
        }
        let stdout = child.stdout.take().context("no stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .context("reading the listening line")?;
        let url = line
            .trim()
            .strip_prefix("gridflow listening on ")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        let output = capture.then(|| {
            lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((Stream::Stdout, line.trim_end().to_owned()));
            readers.push(collect_lines(Stream::Stdout, stdout, lines.clone()));
            CapturedOutput { lines, readers }
        });
        Ok(Self {
            child,
            url,
            client: reqwest::Client::new(),
            output,
        })
    }

    /// The lines written so far (empty unless started with [`Server::start_captured`]).
    pub fn output(&self) -> Vec<(Stream, String)> {
        self.output
            .as_ref()
            .map(CapturedOutput::snapshot)
            .unwrap_or_default()
    }

    /// Kills the process with SIGKILL and returns every line it wrote, read to the end of
    /// both streams (empty unless started with [`Server::start_captured`]).
    pub fn kill_and_collect(mut self) -> anyhow::Result<Vec<(Stream, String)>> {
        self.child.kill().context("kill")?;
        self.child.wait().context("wait")?;
        let Some(output) = self.output.take() else {
            return Ok(Vec::new());
        };
        for reader in output.readers {
            reader
                .join()
                .map_err(|_| anyhow::anyhow!("an output reader panicked"))?;
        }
        let lines = std::mem::take(
            &mut *output
                .lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Ok(lines)
    }

    /// Stops the process with SIGTERM and waits for it: a graceful stop (requests
    /// finished, poll and cron leases given away).
    pub fn terminate(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("kill -TERM")?;
        anyhow::ensure!(status.success(), "kill -TERM failed: {status}");
        self.child.wait().context("wait")?;
        Ok(())
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
        self.call_as(ADMIN_TOKEN, method, path, body).await
    }

    /// Sends a request with `token` (a user's, not the admin's); returns status and JSON
    /// body.
    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(token);
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

    /// `GET` with `token` that must answer 200; returns the body as text (JSON Lines of
    /// `/audit/export`).
    pub async fn get_text_as(&self, token: &str, path: &str) -> anyhow::Result<String> {
        let response = self
            .client
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {text}");
        }
        Ok(text)
    }

    /// `GET` that must answer 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.get_as(ADMIN_TOKEN, path).await
    }

    /// `GET` with `token` that must answer 200.
    pub async fn get_as(&self, token: &str, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self
            .call_as(token, reqwest::Method::GET, path, None)
            .await?;
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
