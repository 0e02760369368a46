//! The real binary under `gridflow serve --sandbox`: a partner launch-kit workflow over all
//! six connectors, with faults injected into the simulators over their `/_sim/*` control
//! endpoints (429 with Retry-After, 500, dropped connection, lost response, expired token),
//! completes through retries with exactly one effect per logical action in every simulator,
//! and replays to its stored state. No credential or token appears in its history, its
//! audit export or any line the server wrote, except the demo users' tokens in the one
//! start-up block that prints them (DESIGN.md §9).
//!
//! The run is deterministic: each system's steps run one after the other, so every queued
//! fault meets the request it was meant for. Tokens are expired while the instance waits
//! for its approval, after each system issued one, and the faults are chosen so that a
//! lost response never coincides with an expired token (a 401 changes nothing, so the
//! lost-response case would test nothing).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_connectors::simulator::smintio::SANDBOX_REFRESH_TOKEN;
use gridflow_connectors::simulator::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD};
use gridflow_store::CursorStore;
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_tests::{ADMIN_TOKEN, Body, Server, Stream, on_every_database, wait_until};

const DEFINITION_ID: &str = "partner-launch-kit";

/// Started by the webhooks that the Canto and iconik simulators send when the launch kit
/// tags their assets (`serve --sandbox` subscribes gridflow to them).
const ON_CANTO_CHANGE: &str = r#"
id: on-canto-change
triggers:
  - event: canto.metadata_updated
    input: {content: "${event.id}", scheme: "${event.scheme}"}
steps:
  - id: note
    action: core.noop
"#;

const ON_ICONIK_CHANGE: &str = r#"
id: on-iconik-change
triggers:
  - event: iconik.asset_changed
    input: {asset: "${event.object_id}", realm: "${event.realm}"}
steps:
  - id: note
    action: core.noop
"#;

/// Effects of setting the sandbox up (its webhook subscriptions), not of any workflow.
const SETUP_EFFECTS: &[&str] = &[
    "webhook.created",
    "webhook.deleted",
    "webhooks.configured",
    "subscription.created",
    "subscription.deleted",
];

/// The number of steps of [`DEFINITION`].
const STEPS: usize = 17;

/// Reads in every system, a brand manager's approval, then writes in every system but
/// Smint.io (whose API is read-only): tag the masters, package and publish them in VIP,
/// announce the kit on the Trading Grid hub, notify the retailers, ask the content team
/// for a new cut, and open an issue to confirm the shelf date.
const DEFINITION: &str = r#"
id: partner-launch-kit
name: Partner launch kit
description: Collects approved assets from OTMM, iconik, Canto and Smint.io, asks a brand manager, then tags, packages and announces the kit to retail partners.
input:
  type: object
  required: [query]
  properties:
    query: {type: string}
steps:
  - id: find
    action: otmm.search_assets
    with: {query: "${input.query}"}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: video
    action: iconik.get_asset
    with: {asset_id: a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f601}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: lifestyle
    action: canto.get_asset
    with: {scheme: image, asset_id: hl26cs0001}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: licensed
    action: smintio.sync_assets
    with: {limit: 10}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: recipients
    action: vip.list_recipients
    with: {group_id: grp-key-retailers}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: partners
    action: trading_grid.list_group_members
    with: {group_id: grp-retailers}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: review
    needs: [find, video, lifestyle, licensed, recipients, partners]
    approval:
      title: "Send the ${input.query} launch kit to ${size(steps.recipients.output.recipients)} VIP recipients and ${size(steps.partners.output.members)} hub partners?"
      groups: [brand-managers]
      quorum: 1
      due: 1h
      on_timeout: reject
  - id: stock_link
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: smintio.get_download_link
    with: {asset_id: "${steps.licensed.output.assets[0].asset_id}", cart_uuid: "${steps.licensed.output.assets[0].cart_uuid}"}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: tag_master
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: otmm.update_metadata
    with: {asset_id: "${steps.find.output.assets[0].asset_id}", fields: {"CUSTOM.FIELD.REGION": "US-East"}}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: tag_video
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: iconik.update_metadata
    with: {asset_id: "${steps.video.output.asset_id}", fields: {region: [US-East, CA-QC]}}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: tag_lifestyle
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: canto.update_metadata
    with: {scheme: image, asset_id: "${steps.lifestyle.output.asset_id}", fields: {Region: US-East}}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: content_task
    needs: [tag_lifestyle]
    action: canto.comment_version
    with: {scheme: image, asset_id: "${steps.lifestyle.output.asset_id}", version_id: "1", comment: "Please add a fr-CA cut for the ${input.query} retail launch."}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: package
    needs: [stock_link, tag_master, tag_video, tag_lifestyle]
    action: vip.create_package
    with:
      title: "${input.query} launch kit"
      assets:
        - {source: otmm, source_id: "${steps.find.output.assets[0].asset_id}"}
        - {source: iconik, source_id: "${steps.video.output.asset_id}"}
        - {source: canto, source_id: "${steps.lifestyle.output.asset_id}"}
        - {source: smintio, source_id: "${steps.stock_link.output.asset_id}", download_url: "${steps.stock_link.output.url}"}
      metadata: {campaign: "${input.query}", region: US-East}
      rights: {valid_from: "${steps.video.output.rights.valid_from}", valid_until: "${steps.video.output.rights.valid_until}"}
      recipients: {group_ids: [grp-key-retailers]}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: publish
    needs: [package]
    action: vip.publish_package
    with: {package_id: "${steps.package.output.package_id}"}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: announce
    needs: [publish]
    action: trading_grid.post_message
    with:
      community_id: cmty-aurora-partners
      group_ids: [grp-retailers]
      title: "The ${input.query} launch kit is in VIP"
      body: "Approved images, video and licensed stock for the launch."
      requires_ack: true
      correlation_id: "${steps.package.output.package_id}"
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: notify
    needs: [announce]
    action: trading_grid.notify_partners
    with: {group_ids: [grp-retailers], channel: portal, subject: "New launch kit", message: "Please acknowledge the launch post.", post_id: "${steps.announce.output.post_id}"}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
  - id: issue
    needs: [notify]
    action: trading_grid.open_issue
    with:
      title: "Confirm the shelf date of the ${input.query} launch"
      description: "Please confirm the shelf date for the new kit."
      partner_company_id: GC00933311CD
      severity: low
      related: {post_id: "${steps.announce.output.post_id}"}
    retry: {max_attempts: 3, initial_interval: 20ms, jitter: false}
output: {package: "${steps.package.output.package_id}", post: "${steps.announce.output.post_id}", issue: "${steps.issue.output.issue_id}"}
"#;

/// Log lines at debug for every gridflow crate, so that the search for secrets in the
/// logs covers what the connectors and the runtime say about each attempt.
const LOG_FILTER: &str = "info,gridflow=debug,gridflow_core=debug,gridflow_store=debug,\
                          gridflow_runtime=debug,gridflow_connectors=debug";

const SYSTEMS: [&str; 6] = ["trading_grid", "otmm", "vip", "iconik", "canto", "smintio"];

/// The faults queued before the start: (system, method, path prefix, fault). Each is
/// consumed by the first request that matches it.
fn faults() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let rate_limit = json!({"kind": "rate_limit", "retry_after_secs": 1});
    let server_error = json!({"kind": "server_error"});
    let drop = json!({"kind": "drop"});
    let lose_response = json!({"kind": "lose_response"});
    vec![
        (
            "smintio",
            "GET",
            "/consumer/v1/assets/license-purchase-transactions",
            rate_limit.clone(),
        ),
        ("otmm", "PATCH", "/otmmapi/v6/assets", lose_response.clone()),
        (
            "iconik",
            "PUT",
            "/API/metadata/v1/assets/",
            server_error.clone(),
        ),
        ("canto", "PUT", "/api/v1/batch/edit", drop.clone()),
        (
            "canto",
            "POST",
            "/api/v1/version/comment",
            lose_response.clone(),
        ),
        ("vip", "POST", "/v1/packages", rate_limit),
        ("vip", "POST", "/v1/packages/", lose_response.clone()),
        ("trading_grid", "POST", "/hub/v1/communities/", server_error),
        (
            "trading_grid",
            "POST",
            "/hub/v1/notifications",
            lose_response,
        ),
        ("trading_grid", "POST", "/hub/v1/issues", drop),
    ]
}

/// When a faulted step's effect took place, compared with its retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EffectTiming {
    /// A read: no effect.
    None,
    /// The fault refused the first attempt before the handler ran: the effect is the
    /// second attempt's, after the retry was scheduled.
    OnRetry,
    /// The first attempt took effect and its response was lost: the effect precedes the
    /// retry, which the simulator answered from its stored reply.
    BeforeRetry,
}

/// The steps whose first attempt meets a fault, how that failure must be classified, and
/// when its effect took place. Every other action step succeeds at its first attempt.
const RETRIED: [(&str, &str, EffectTiming); 10] = [
    ("licensed", "rate_limited", EffectTiming::None),
    ("tag_master", "transport", EffectTiming::BeforeRetry),
    ("tag_video", "server_error", EffectTiming::OnRetry),
    ("tag_lifestyle", "transport", EffectTiming::OnRetry),
    ("content_task", "transport", EffectTiming::BeforeRetry),
    ("package", "rate_limited", EffectTiming::OnRetry),
    ("publish", "transport", EffectTiming::BeforeRetry),
    ("announce", "server_error", EffectTiming::OnRetry),
    ("notify", "transport", EffectTiming::BeforeRetry),
    ("issue", "transport", EffectTiming::OnRetry),
];

/// The systems whose tokens expire while the instance waits for its approval. Not OTMM:
/// its first write after the approval is the one whose response is lost, and a request
/// refused with 401 would take no effect.
const EXPIRED: [&str; 5] = ["trading_grid", "vip", "iconik", "canto", "smintio"];

/// The effects each simulator must show, as (effect, step): one per logical action.
fn expected_effects(system: &str) -> &'static [(&'static str, &'static str)] {
    match system {
        "otmm" => &[("metadata.updated", "tag_master")],
        "iconik" => &[("metadata.updated", "tag_video")],
        "canto" => &[
            ("metadata.updated", "tag_lifestyle"),
            ("version.commented", "content_task"),
        ],
        "vip" => &[
            ("package.created", "package"),
            ("package.published", "publish"),
        ],
        "trading_grid" => &[
            ("post.published", "announce"),
            ("notification.queued", "notify"),
            ("issue.opened", "issue"),
        ],
        _ => &[],
    }
}

/// The simulators of one `serve --sandbox` run, reached over their control endpoints.
struct Simulators {
    urls: BTreeMap<String, String>,
    client: reqwest::Client,
}

impl Simulators {
    fn url(&self, system: &str, path: &str) -> anyhow::Result<String> {
        let base = self
            .urls
            .get(system)
            .with_context(|| format!("no simulator {system}"))?;
        Ok(format!("{base}{path}"))
    }

    async fn send(
        &self,
        method: Method,
        system: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.client.request(method, self.url(system, path)?);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{system} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(
            status.is_success(),
            "{system} {path} answered {status}: {text}"
        );
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// Every token the simulator issued, expired ones included.
    async fn tokens(&self, system: &str) -> anyhow::Result<Vec<String>> {
        let listed = self.send(Method::GET, system, "/_sim/tokens", None).await?;
        Ok(serde_json::from_value(listed["tokens"].clone())?)
    }

    /// The effects as (effect, idempotency key, when), in the order they took place.
    async fn effects(
        &self,
        system: &str,
    ) -> anyhow::Result<Vec<(String, Option<String>, Instant)>> {
        let listed = self
            .send(Method::GET, system, "/_sim/effects", None)
            .await?;
        listed["effects"]
            .as_array()
            .context("no effects")?
            .iter()
            .map(|effect| {
                Ok((
                    effect["action"]
                        .as_str()
                        .context("effect without action")?
                        .to_owned(),
                    effect["idempotency_key"].as_str().map(str::to_owned),
                    instant(&effect["at"])?,
                ))
            })
            .collect()
    }
}

/// What `serve --sandbox` printed at start: the simulators' URLs and the demo users'
/// tokens, once all of it was written.
fn startup(
    lines: &[(Stream, String)],
) -> Option<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    gridflow_tests::process::banner(lines)
}

/// Whether `text` holds something shaped like a simulator token (`sim-` and 48 hex digits).
fn holds_simulator_token(text: &str) -> bool {
    text.match_indices("sim-").any(|(index, _)| {
        let rest = &text.as_bytes()[index + 4..];
        rest.len() >= 48 && rest[..48].iter().all(u8::is_ascii_hexdigit)
    })
}

/// Standard base64, for the `Authorization: Basic` value the Trading Grid token request
/// carries.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let value = chunk.iter().enumerate().fold(0u32, |value, (index, byte)| {
            value | (u32::from(*byte) << (16 - 8 * index))
        });
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(
                    ALPHABET[((value >> (18 - 6 * index)) & 63) as usize],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

type Instant = chrono::DateTime<chrono::FixedOffset>;

/// An RFC 3339 timestamp of an event or an effect.
fn instant(value: &Value) -> anyhow::Result<Instant> {
    let text = value
        .as_str()
        .with_context(|| format!("{value} is no timestamp"))?;
    Ok(chrono::DateTime::parse_from_rfc3339(text)?)
}

async fn launch_kit(database_url: &str) -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let config = directory.path().join("gridflow.toml");
    std::fs::write(
        &config,
        format!(
            // Smint.io's change feed reads the path the `licensed` step's fault is queued
            // on: it reads once at start-up (waited for below) and then only hourly, so the
            // fault is the step's.
            "[sandbox]\nstate_dir = {:?}\n\n[connectors.smintio]\nbase_url = \"http://127.0.0.1:9\"\n\
             identity_url = \"http://127.0.0.1:9\"\nclient_id_env = \"UNUSED\"\nclient_secret_env = \"UNUSED\"\n\
             refresh_token_env = \"UNUSED\"\npoll_interval = \"1h\"\n",
            directory.path().join("sandbox").display().to_string()
        ),
    )?;
    let config = config.display().to_string();
    let server = Server::start_captured(
        database_url,
        &["--sandbox", "--config", &config],
        &[("RUST_LOG", LOG_FILTER)],
    )?;
    let store = SqlStore::connect(database_url, SqlOptions::default()).await?;
    wait_until(
        Duration::from_secs(30),
        "the Smint.io poller's first pass",
        || async { Ok(store.load_cursor("smintio").await?) },
    )
    .await?;
    let (urls, demo) = wait_until(
        Duration::from_secs(10),
        "the sandbox start-up lines",
        || async { Ok(startup(&server.output())) },
    )
    .await?;
    let simulators = Simulators {
        urls,
        client: reqwest::Client::new(),
    };
    let token_of = |user: &str| {
        demo.get(user)
            .cloned()
            .with_context(|| format!("no demo user {user}"))
    };
    let (analyst, approver, auditor) = (token_of("ana")?, token_of("bob")?, token_of("otto")?);

    for (system, method, path_prefix, fault) in faults() {
        simulators
            .send(
                Method::POST,
                system,
                "/_sim/faults",
                Some(json!({"fault": fault, "method": method, "path_prefix": path_prefix})),
            )
            .await?;
    }

    for definition in [DEFINITION, ON_CANTO_CHANGE, ON_ICONIK_CHANGE] {
        server
            .post("/definitions", Body::Text(definition.to_owned()))
            .await?;
    }
    let (status, started) = server
        .call_as(
            &analyst,
            Method::POST,
            &format!("/definitions/{DEFINITION_ID}/instances"),
            Some(Body::Json(json!({"input": {"query": "Citrus Spritz"}}))),
        )
        .await?;
    ensure!(status == 201, "start answered {status}: {started}");
    let id = started["instance_id"]
        .as_str()
        .context("no instance_id")?
        .to_owned();

    // The reads are done and the approval waits: every system has issued a token.
    let approval = wait_until(
        Duration::from_secs(20),
        "the approval to be requested",
        || async {
            let page = server.get_as(&approver, "/approvals").await?;
            Ok(page["items"]
                .as_array()
                .and_then(|items| items.first())
                .cloned())
        },
    )
    .await?;
    ensure!(
        approval["title"]
            == "Send the Citrus Spritz launch kit to 2 VIP recipients and 2 hub partners?",
        "approval: {approval}"
    );
    let mut issued_before = BTreeMap::new();
    for system in SYSTEMS {
        let tokens = simulators.tokens(system).await?;
        ensure!(
            !tokens.is_empty(),
            "{system} issued no token before the approval"
        );
        issued_before.insert(system, tokens.len());
    }
    for system in EXPIRED {
        simulators
            .send(Method::POST, system, "/_sim/tokens/expire", None)
            .await?;
    }
    let approval_id = approval["id"].as_str().context("no approval id")?;
    let (status, decided) = server
        .call_as(
            &approver,
            Method::POST,
            &format!("/approvals/{approval_id}/decision"),
            Some(Body::Json(
                json!({"decision": "approve", "comment": "Ship it to the retailers."}),
            )),
        )
        .await?;
    ensure!(status == 200, "decision answered {status}: {decided}");

    let view = wait_until(
        Duration::from_secs(40),
        "the instance to finish",
        || async {
            let view = server.get(&format!("/instances/{id}")).await?;
            Ok(["completed", "failed", "cancelled"]
                .contains(&view["status"].as_str().unwrap_or_default())
                .then_some(view))
        },
    )
    .await?;
    ensure!(
        view["status"] == "completed",
        "the instance did not complete: {view:#}"
    );

    // The Canto and iconik simulators pushed their change (the tagging) to gridflow as
    // webhooks, each of which started one instance with the changed asset.
    for (definition, field, step) in [
        ("on-canto-change", "content", "lifestyle"),
        ("on-iconik-change", "asset", "video"),
    ] {
        let asset = view["steps"][step]["output"]["asset_id"].clone();
        let started = wait_until(
            Duration::from_secs(20),
            &format!("the {definition} webhook instance"),
            || async {
                let page = server
                    .get(&format!("/instances?definition={definition}"))
                    .await?;
                let items = page["items"].as_array().cloned().unwrap_or_default();
                Ok(
                    (!items.is_empty() && items.iter().all(|item| item["status"] == "completed"))
                        .then_some(items),
                )
            },
        )
        .await?;
        ensure!(
            started.len() == 1 && started[0]["input"][field] == asset,
            "{definition}: one instance for the tagged asset {asset}: {started:#?}"
        );
    }

    // Attempts: two for each faulted step, one for every other action step.
    let retried: BTreeMap<&str, &str> = RETRIED
        .iter()
        .map(|(step, code, _)| (*step, *code))
        .collect();
    let steps = view["steps"].as_object().context("no steps")?;
    ensure!(
        steps.len() == STEPS,
        "{} steps in the instance, not {STEPS}",
        steps.len()
    );
    for part in ["package", "post", "issue"] {
        ensure!(
            view["output"][part].is_string(),
            "no {part} in the output: {}",
            view["output"]
        );
    }
    for (step, state) in steps {
        ensure!(state["status"] == "succeeded", "step {step}: {state}");
        if step == "review" {
            continue;
        }
        let wanted = if retried.contains_key(step.as_str()) {
            2
        } else {
            1
        };
        ensure!(
            state["attempts"] == wanted,
            "step {step} took {} attempts, not {wanted}",
            state["attempts"]
        );
    }

    // History: one retry per faulted step, classified as its fault; Retry-After honoured.
    let history = server
        .get_as(&auditor, &format!("/instances/{id}/history"))
        .await?;
    let events = history["events"].as_array().context("no events")?;
    let mut retries: BTreeMap<String, Vec<(String, Instant)>> = BTreeMap::new();
    for event in events
        .iter()
        .filter(|event| event["type"] == "step_retry_scheduled")
    {
        let data = &event["data"];
        let step = data["step"].as_str().context("retry without step")?;
        let code = data["error"]["code"]
            .as_str()
            .context("retry without code")?;
        ensure!(data["error"]["retryable"] == true, "{step}: {data}");
        let at = instant(&event["at"])?;
        if code == "rate_limited" {
            let fire_at = instant(&data["fire_at"])?;
            ensure!(
                fire_at - at >= chrono::Duration::seconds(1),
                "{step}: Retry-After: 1 not honoured ({at} → {fire_at})"
            );
            let next = events
                .iter()
                .find(|later| {
                    later["type"] == "step_started"
                        && later["data"]["step"] == step
                        && later["data"]["attempt"] == 2
                })
                .with_context(|| format!("{step}: no second attempt started"))?;
            let started = instant(&next["at"])?;
            ensure!(
                started >= fire_at,
                "{step}: the second attempt started at {started}, before {fire_at}"
            );
        }
        retries
            .entry(step.to_owned())
            .or_default()
            .push((code.to_owned(), at));
    }
    let codes: BTreeMap<&str, Vec<&str>> = retries
        .iter()
        .map(|(step, list)| {
            (
                step.as_str(),
                list.iter().map(|(code, _)| code.as_str()).collect(),
            )
        })
        .collect();
    let wanted_codes: BTreeMap<&str, Vec<&str>> = RETRIED
        .iter()
        .map(|(step, code, _)| (*step, vec![*code]))
        .collect();
    ensure!(
        codes == wanted_codes,
        "retries {codes:?}, wanted {wanted_codes:?}"
    );

    // One effect per logical action, keyed `<instance>:<step>`, in every simulator; a
    // lost response's effect precedes its retry, any other faulted write's follows it.
    for system in SYSTEMS {
        let effects = simulators.effects(system).await?;
        let mut found: Vec<(String, Option<String>)> = effects
            .iter()
            .filter(|(action, _, _)| !SETUP_EFFECTS.contains(&action.as_str()))
            .map(|(action, key, _)| (action.clone(), key.clone()))
            .collect();
        found.sort();
        let mut wanted: Vec<(String, Option<String>)> = expected_effects(system)
            .iter()
            .map(|(action, step)| ((*action).to_owned(), Some(format!("{id}:{step}"))))
            .collect();
        wanted.sort();
        ensure!(
            found == wanted,
            "{system}: effects {found:?}, wanted {wanted:?}"
        );
        for (_, step) in expected_effects(system) {
            let Some((_, _, when)) = RETRIED.iter().find(|(retried, _, _)| retried == step) else {
                continue;
            };
            let key = format!("{id}:{step}");
            let effect_at = effects
                .iter()
                .find(|(_, effect_key, _)| effect_key.as_deref() == Some(key.as_str()))
                .map(|(_, _, at)| *at)
                .context("no effect")?;
            let retry_at = retries[*step][0].1;
            let ordered = match when {
                EffectTiming::BeforeRetry => effect_at <= retry_at,
                EffectTiming::OnRetry => effect_at > retry_at,
                EffectTiming::None => false,
            };
            ensure!(
                ordered,
                "{system} {step}: effect at {effect_at}, retry scheduled at {retry_at}, expected {when:?}"
            );
        }
    }

    // Tokens: each expired system issued exactly one more (the refresh), OTMM none.
    let mut simulator_tokens = Vec::new();
    for system in SYSTEMS {
        let tokens = simulators.tokens(system).await?;
        let wanted = issued_before[system] + usize::from(EXPIRED.contains(&system));
        ensure!(
            tokens.len() == wanted,
            "{system} issued {} tokens, wanted {wanted}",
            tokens.len()
        );
        simulator_tokens.extend(tokens);
    }

    let replay = server
        .get_as(&auditor, &format!("/instances/{id}/replay"))
        .await?;
    ensure!(
        replay["matches_stored"] == true,
        "the replayed state differs from the stored state: {replay}"
    );

    // (b) No credential or token in the history, the audit export or the output.
    let stored = [
        serde_json::to_string(&history)?,
        serde_json::to_string(&view)?,
        server
            .get_text_as(ADMIN_TOKEN, &format!("/audit/export?instance={id}"))
            .await?,
    ];
    ensure!(
        stored[2].lines().count() > events.len(),
        "the export lacks events"
    );
    let lines = server.kill_and_collect()?;
    let mut secrets: Vec<(String, String)> = vec![
        (
            "the sandbox client secret".into(),
            SANDBOX_CLIENT_SECRET.into(),
        ),
        ("the sandbox password".into(), SANDBOX_PASSWORD.into()),
        (
            "the Smint.io refresh token".into(),
            SANDBOX_REFRESH_TOKEN.into(),
        ),
        (
            "the Trading Grid basic credentials".into(),
            base64(format!("{SANDBOX_CLIENT_ID}:{SANDBOX_CLIENT_SECRET}").as_bytes()),
        ),
        ("the admin token".into(), ADMIN_TOKEN.into()),
    ];
    for token in &simulator_tokens {
        secrets.push((format!("simulator token {}…", &token[..8]), token.clone()));
    }
    let demo_secrets: Vec<(String, String)> = demo
        .iter()
        .map(|(user, token)| (format!("{user}'s demo token"), token.clone()))
        .collect();
    for text in &stored {
        for (what, secret) in secrets.iter().chain(&demo_secrets) {
            ensure!(
                !text.contains(secret.as_str()),
                "{what} is in the history or the export"
            );
        }
        ensure!(
            !holds_simulator_token(text),
            "a simulator token is in the history or the export"
        );
    }

    // The demo tokens appear once each, in the start-up block that lists them; nothing else
    // the server wrote holds a secret.
    let block_start = lines
        .iter()
        .position(|(stream, line)| {
            *stream == Stream::Stderr && line == "sandbox users (tokens shown once):"
        })
        .context("no demo users block")?;
    let mut demo_seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, (stream, line)) in lines.iter().enumerate() {
        for (what, secret) in &secrets {
            ensure!(
                !line.contains(secret.as_str()),
                "{what} is in {stream:?} line {index}: {}",
                line.replace(secret.as_str(), "<redacted>")
            );
        }
        ensure!(
            !holds_simulator_token(line),
            "a simulator token is in {stream:?} line {index} (of {} characters)",
            line.len()
        );
        for (user, token) in &demo {
            if line.contains(token.as_str()) {
                // Log lines of other tasks may come between the block's lines, so a
                // demo line is recognised by its shape, after the block's heading.
                let demo_line = *stream == Stream::Stderr
                    && index > block_start
                    && line.split_whitespace().next() == Some(user.as_str())
                    && line.contains(" role=");
                ensure!(
                    demo_line,
                    "{user}'s demo token is outside its start-up line: {stream:?} line {index}"
                );
                *demo_seen.entry(user.as_str()).or_default() += 1;
            }
        }
    }
    ensure!(
        demo_seen.len() == demo.len() && demo_seen.values().all(|count| *count == 1),
        "each demo token is printed exactly once: {demo_seen:?}"
    );
    // The search above read the run's debug lines, not an empty log.
    let failed_attempts = lines
        .iter()
        .filter(|(_, line)| {
            line.contains("DEBUG")
                && line.contains("connector_invoke")
                && line.contains("action failed")
        })
        .count();
    ensure!(
        failed_attempts >= RETRIED.len(),
        "only {failed_attempts} debug lines about failed attempts in {} lines of output",
        lines.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_connector_workflow_under_serve_sandbox_completes_through_faults_without_duplicates_or_leaks()
 {
    on_every_database(|url| async move { launch_kit(&url).await })
        .await
        .unwrap();
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(
        base64(b"sandbox-client:sandbox-client-secret"),
        "c2FuZGJveC1jbGllbnQ6c2FuZGJveC1jbGllbnQtc2VjcmV0"
    );
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"a"), "YQ==");
    assert!(
        !holds_simulator_token("sim-0123"),
        "a short suffix is no token"
    );
    assert!(holds_simulator_token(&format!(
        "x sim-{} y",
        "ab".repeat(24)
    )));
}
