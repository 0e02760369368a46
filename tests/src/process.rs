//! The bundled processes' harness: the real `gridflow serve --sandbox` on a database, with
//! its six simulators, its demo users' tokens read from the start-up banner and its
//! clock moved through `POST /api/v1/sandbox/clock`. A test deploys a definition from
//! `workflows/`, acts as each person would through the HTTP API (analyst `ana`, the
//! approvers, the auditor `otto`; partners through the simulators' own routes) and reads
//! the outcome where it lands: the simulators' persisted records, the distribution
//! ledger, and history, replayed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{Body, Server, Stream, wait_until};

/// How long a wait on the sandbox may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The simulators the bundled processes use; the banner names each.
const SIMULATORS: [&str; 6] = ["canto", "iconik", "otmm", "smintio", "trading_grid", "vip"];

/// The heading of the demo users' lines in the start-up banner.
const USERS_HEADING: &str = "sandbox users (tokens shown once):";

/// A running `serve --sandbox` and what a test needs to act on it.
pub struct Sandbox {
    server: Server,
    simulators: BTreeMap<String, String>,
    tokens: BTreeMap<String, String>,
    state_dir: PathBuf,
    client: reqwest::Client,
    _folder: tempfile::TempDir,
}

/// `workflows/` of this checkout.
pub fn workflows_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows")
}

/// The simulators' URLs and the demo users' tokens, once the start-up banner of
/// `serve --sandbox` holds them all.
pub fn banner(
    lines: &[(Stream, String)],
) -> Option<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let mut simulators = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    let mut in_users = false;
    for (stream, line) in lines {
        if *stream != Stream::Stderr {
            continue;
        }
        if let Some(rest) = line.strip_prefix("sandbox ")
            && let Some((name, url)) = rest.split_once(' ')
            && url.starts_with("http://127.0.0.1:")
        {
            simulators.insert(name.to_owned(), url.to_owned());
        }
        if line == USERS_HEADING {
            in_users = true;
        } else if in_users && let Some((head, token)) = line.split_once(" token=") {
            if let Some(user) = head.split_whitespace().next() {
                tokens.insert(user.to_owned(), token.trim().to_owned());
            }
        } else {
            in_users = false;
        }
    }
    let users = gridflow::http::sandbox_tokens::sandbox_users().len();
    let every_system = SIMULATORS
        .iter()
        .all(|system| simulators.contains_key(*system));
    (every_system && tokens.len() == users).then_some((simulators, tokens))
}

impl Sandbox {
    /// Starts `serve --sandbox` on `database_url`, its simulators' state and the content
    /// store in a temporary folder, and waits for its banner.
    pub async fn start(database_url: &str) -> anyhow::Result<Self> {
        let folder = tempfile::tempdir()?;
        let state_dir = folder.path().join("sandbox");
        let config = folder.path().join("gridflow.toml");
        std::fs::write(
            &config,
            format!(
                "[sandbox]\nstate_dir = {:?}\n\n[content]\ndir = {:?}\n",
                state_dir.display().to_string(),
                folder.path().join("content").display().to_string(),
            ),
        )?;
        let config = config.display().to_string();
        let server = Server::start_captured(
            database_url,
            &["--sandbox", "--config", config.as_str()],
            &[],
        )?;
        let (simulators, tokens) =
            wait_until(DEADLINE, "the sandbox's start-up banner", || async {
                Ok(banner(&server.output()))
            })
            .await?;
        Ok(Self {
            server,
            simulators,
            tokens,
            state_dir,
            client: reqwest::Client::new(),
            _folder: folder,
        })
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// The server, for what the harness does not wrap.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// A simulator's base URL (`trading_grid`, `vip`, `otmm`, `iconik`, `canto`, `smintio`).
    ///
    /// # Panics
    /// When the sandbox has no such simulator: a typo in the test.
    pub fn simulator_url(&self, system: &str) -> &str {
        self.simulators
            .get(system)
            .unwrap_or_else(|| panic!("the sandbox has no simulator {system:?}"))
    }

    /// A demo user's token (`ana`, `bob`, `bea`, `lea`, `cody`, `cara`, `max`, `otto`).
    pub fn token(&self, user: &str) -> anyhow::Result<&str> {
        self.tokens
            .get(user)
            .map(String::as_str)
            .with_context(|| format!("the sandbox has no demo user {user:?}"))
    }

    /// Calls `/api/v1<path>` as `user`; answers the status and the JSON body.
    pub async fn api(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.server
            .call_as(self.token(user)?, method, path, body.map(Body::Json))
            .await
    }

    /// `GET /api/v1<path>` as `user`, which must answer 200.
    pub async fn get(&self, user: &str, path: &str) -> anyhow::Result<Value> {
        self.server.get_as(self.token(user)?, path).await
    }

    /// Calls `/api/v1<path>` as `user`, which must answer 2xx.
    pub async fn call_ok(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.api(user, method.clone(), path, body).await?;
        ensure!(
            (200..300).contains(&status),
            "{method} {path} as {user} answered {status}: {answer}"
        );
        Ok(answer)
    }

    /// Deploys `workflows/<name>.yaml` as the analyst; answers the deployed definition.
    pub async fn deploy(&self, name: &str) -> anyhow::Result<Value> {
        let file = workflows_folder().join(format!("{name}.yaml"));
        let source = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let (status, answer) = self
            .server
            .call_as(
                self.token("ana")?,
                Method::POST,
                "/definitions",
                Some(Body::Text(source)),
            )
            .await?;
        ensure!(
            status == 200 || status == 201,
            "deploying {} answered {status}: {answer}",
            file.display()
        );
        Ok(answer)
    }

    /// Starts an instance of `definition` as the analyst; answers its id.
    pub async fn start_instance(&self, definition: &str, input: Value) -> anyhow::Result<String> {
        let answer = self
            .call_ok(
                "ana",
                Method::POST,
                &format!("/definitions/{definition}/instances"),
                Some(json!({"input": input})),
            )
            .await?;
        answer["instance_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the start answered no id: {answer}"))
    }

    /// The instance view (`GET /instances/{id}`), as the analyst.
    pub async fn instance(&self, id: &str) -> anyhow::Result<Value> {
        self.get("ana", &format!("/instances/{id}")).await
    }

    /// Waits until instance `id` has `status`; fails at once when it ended otherwise.
    pub async fn wait_status(&self, id: &str, status: &str) -> anyhow::Result<Value> {
        wait_until(
            DEADLINE,
            &format!("instance {id} to be {status}"),
            || async {
                let instance = self.instance(id).await?;
                let now = instance["status"].as_str().unwrap_or_default();
                if now == status {
                    return Ok(Some(instance));
                }
                if matches!(now, "completed" | "failed" | "cancelled") {
                    bail!("instance {id} ended {now}, not {status}: {instance:#}");
                }
                Ok(None)
            },
        )
        .await
    }

    /// Waits until step `step` of instance `id` has `status`; answers the instance view.
    pub async fn wait_step(&self, id: &str, step: &str, status: &str) -> anyhow::Result<Value> {
        wait_until(
            DEADLINE,
            &format!("step {step} of {id} to be {status}"),
            || async {
                let instance = self.instance(id).await?;
                if instance["steps"][step]["status"] == status {
                    return Ok(Some(instance));
                }
                if matches!(
                    instance["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                ) {
                    bail!("instance {id} ended before step {step} was {status}: {instance:#}");
                }
                Ok(None)
            },
        )
        .await
    }

    /// The instances of `definition`, newest first, as the analyst lists them.
    pub async fn instances(&self, definition: &str) -> anyhow::Result<Vec<Value>> {
        let page = self
            .get(
                "ana",
                &format!("/instances?definition={definition}&limit=500"),
            )
            .await?;
        Ok(page["items"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until a trigger started an instance of `definition` whose input satisfies
    /// `wanted`; its id.
    pub async fn started_instance(
        &self,
        definition: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<String> {
        wait_until(
            DEADLINE,
            &format!("an instance of {definition} to start"),
            || async {
                Ok(self
                    .instances(definition)
                    .await?
                    .iter()
                    .find(|instance| wanted(&instance["input"]))
                    .and_then(|instance| instance["id"].as_str().map(str::to_owned)))
            },
        )
        .await
    }

    /// A partner user (`login`) raises a request on the hub (`POST /partner/v1/requests`),
    /// as the partner would; its id.
    pub async fn partner_request(&self, login: &str, request: Value) -> anyhow::Result<String> {
        let (status, created) = self
            .partner(
                "trading_grid",
                Some(login),
                Method::POST,
                "/partner/v1/requests",
                Some(request),
            )
            .await?;
        ensure!(
            status == 201,
            "the partner's request answered {status}: {created}"
        );
        created["request_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the hub answered no request id: {created}"))
    }

    /// The pending approvals `user` sees (own and groups').
    pub async fn approvals(&self, user: &str) -> anyhow::Result<Vec<Value>> {
        let page = self.get(user, "/approvals?limit=500").await?;
        Ok(page["items"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `user` sees a pending approval of step `step` of instance `id`.
    pub async fn approval(&self, user: &str, id: &str, step: &str) -> anyhow::Result<Value> {
        wait_until(
            DEADLINE,
            &format!("{user}'s pending approval of {step} in {id}"),
            || async {
                Ok(self
                    .approvals(user)
                    .await?
                    .into_iter()
                    .find(|approval| approval["instance_id"] == id && approval["step"] == step))
            },
        )
        .await
    }

    /// `user` decides `approval` (`approve`, `reject`) with form `data` and `comment`;
    /// must answer 2xx.
    pub async fn decide(
        &self,
        user: &str,
        approval: &Value,
        decision: &str,
        data: Value,
        comment: Option<&str>,
    ) -> anyhow::Result<Value> {
        let approval_id = approval["id"]
            .as_str()
            .with_context(|| format!("an approval without id: {approval}"))?;
        let mut body = json!({"decision": decision});
        if !data.is_null() {
            body["data"] = data;
        }
        if let Some(comment) = comment {
            body["comment"] = json!(comment);
        }
        self.call_ok(
            user,
            Method::POST,
            &format!("/approvals/{approval_id}/decision"),
            Some(body),
        )
        .await
    }

    /// Sends signal `name` with `payload` to instance `id`, as the analyst.
    pub async fn signal(&self, id: &str, name: &str, payload: Value) -> anyhow::Result<Value> {
        self.call_ok(
            "ana",
            Method::POST,
            &format!("/instances/{id}/signals/{name}"),
            Some(payload),
        )
        .await
    }

    /// Moves the sandbox clock forward by `advance` (`"90m"`, `"2d"`) and fires what
    /// became due; answers the server's new time.
    pub async fn advance(&self, advance: &str) -> anyhow::Result<Value> {
        self.call_ok(
            "ana",
            Method::POST,
            "/sandbox/clock",
            Some(json!({"advance": advance})),
        )
        .await
    }

    /// The distribution ledger's rows (`GET /ledger<query>`, every page), as the auditor.
    pub async fn ledger(&self, query: &str) -> anyhow::Result<Vec<Value>> {
        let separator = if query.contains('?') { '&' } else { '?' };
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/ledger{query}{separator}limit=500");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.get("otto", &path).await?;
            rows.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(rows),
            }
        }
    }

    /// Instance `id`'s history events (`GET /instances/{id}/history`), as the auditor.
    pub async fn history(&self, id: &str) -> anyhow::Result<Vec<Value>> {
        let history = self
            .get("otto", &format!("/instances/{id}/history"))
            .await?;
        history["events"]
            .as_array()
            .cloned()
            .with_context(|| format!("the history of {id} holds no events: {history}"))
    }

    /// Replay of instance `id`'s whole history must equal its stored state, as the
    /// auditor asks it.
    pub async fn assert_replay(&self, id: &str) -> anyhow::Result<()> {
        let replay = self.get("otto", &format!("/instances/{id}/replay")).await?;
        ensure!(
            replay["matches_stored"] == true,
            "instance {id}: replay differs from the stored state: {replay:#}"
        );
        Ok(())
    }

    /// A simulator's persisted record (`{state, effects, …}`), read from its state file.
    pub fn records(&self, system: &str) -> anyhow::Result<Value> {
        let file = self.state_dir.join(format!("{system}.json"));
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
    }

    /// Calls a simulator directly at `path` (a partner acting in the hub: `login` names the
    /// partner user in `X-Partner-Login`); answers the status and JSON body.
    pub async fn partner(
        &self,
        system: &str,
        login: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.simulator_url(system));
        let mut request = self.client.request(method, &url);
        if let Some(login) = login {
            request = request.header("X-Partner-Login", login);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, json))
    }

    /// Stops the server gracefully.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.terminate()
    }
}
