//! Recovery, audited, over HTTP and the CLI against the real binary, on every backend:
//! a failed instance re-run from its failed step with edited arguments completes and its
//! history names the actor and the edits; a re-run without a step evaluates the output
//! again with a new input; approvers are refused (403), unknown steps are 422, a waiting
//! instance is 409. A migration dry run classifies running instances with reasons; applying
//! it moves the compatible ones, which complete on the new version's steps. Every
//! instance replays to its stored state, across the migration too, and the export verifies
//! offline.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::{Body, Server, gridflow_binary, on_every_database, wait_until};

const PUBLISH: &str = r#"
id: rerun-publish
input:
  type: object
  required: [name]
  properties: {name: {type: string}}
steps:
  - id: prepare
    action: core.echo
    with: {name: "${input.name}"}
  - id: publish
    needs: [prepare]
    action: core.fail_until
    with: {attempts: 5}
    retry: {max_attempts: 1}
  - id: notify
    needs: [publish]
    action: core.echo
    with: {attempt: "${steps.publish.output.attempt}"}
output: {name: "${input.name}", attempt: "${steps.notify.output.attempt}"}
"#;

const MOVING_V1: &str = r#"
id: moving
input:
  type: object
  required: [path]
  properties: {path: {type: string}}
steps:
  - id: a
    action: core.echo
    with: {v: 1}
  - id: x
    needs: [a]
    when: "${input.path == 'x'}"
    action: core.echo
    with: {v: 1}
  - id: gate
    needs: [a]
    wait: {signal: go}
  - id: b
    needs: [gate, x]
    action: core.echo
    with: {v: 1}
output: {b: "${steps.b.output}"}
"#;

const MOVING_V2: &str = r#"
id: moving
input:
  type: object
  required: [path]
  properties: {path: {type: string}}
steps:
  - id: start
    action: core.echo
    with: {v: 1}
  - id: gate
    needs: [start]
    wait: {signal: go}
  - id: b
    needs: [gate]
    action: core.echo
    with: {v: 2}
  - id: c
    needs: [gate]
    action: core.echo
    with: {new: true}
output: {b: "${steps.b.output}", c: "${steps.c.output}"}
"#;

const WAIT: Duration = Duration::from_secs(30);

/// A token of a new user with `role`.
async fn token(server: &Server, user: &str, role: &str) -> anyhow::Result<String> {
    let created = server
        .post(
            "/tokens",
            Body::Json(json!({"user": user, "role": role, "groups": []})),
        )
        .await?;
    Ok(created["token"].as_str().context("no token")?.to_owned())
}

async fn start(server: &Server, definition: &str, input: Value) -> anyhow::Result<String> {
    let started = server
        .post(
            &format!("/definitions/{definition}/instances"),
            Body::Json(json!({"input": input})),
        )
        .await?;
    Ok(started["instance_id"]
        .as_str()
        .context("no instance id")?
        .to_owned())
}

/// Waits until the instance has `status`; returns it.
async fn status(server: &Server, id: &str, status: &str) -> anyhow::Result<Value> {
    let reached = wait_until(WAIT, &format!("instance {id} is {status}"), || async move {
        let instance = server.get(&format!("/instances/{id}")).await?;
        Ok((instance["status"] == status).then_some(instance))
    })
    .await;
    match reached {
        Ok(instance) => Ok(instance),
        Err(error) => {
            let instance = server.get(&format!("/instances/{id}")).await?;
            let history = server.get(&format!("/instances/{id}/history")).await?;
            Err(error.context(format!("the instance: {instance}\nits history: {history}")))
        }
    }
}

async fn assert_replays(server: &Server, id: &str) -> anyhow::Result<()> {
    let replayed = server.get(&format!("/instances/{id}/replay")).await?;
    ensure!(
        replayed["matches_stored"] == true,
        "instance {id}: the replay differs from the stored state: {replayed}"
    );
    Ok(())
}

async fn events(server: &Server, id: &str, event_type: &str) -> anyhow::Result<Vec<Value>> {
    let history = server.get(&format!("/instances/{id}/history")).await?;
    Ok(history["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter(|event| event["type"] == event_type)
        .cloned()
        .collect())
}

/// `POST` as `token`; the status and the body.
async fn post_as(
    server: &Server,
    token: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    server
        .call_as(token, Method::POST, path, Some(Body::Json(body)))
        .await
}

/// The paths of a 422's details.
fn detail_paths(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map(|details| {
            details
                .iter()
                .filter_map(|detail| detail["path"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the `gridflow` client with `token`; its exit code and standard output.
fn cli(server: &Server, token: &str, args: &[&str]) -> anyhow::Result<(i32, String)> {
    let output = Command::new(gridflow_binary()?)
        .args(args)
        .args(["--server", &server.url])
        .env("GRIDFLOW_TOKEN", token)
        .env_remove("GRIDFLOW_SERVER")
        .output()
        .context("running the gridflow client")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.code() == Some(0),
        "gridflow {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((0, stdout))
}

async fn rerun_cases(server: &Server, analyst: &str, approver: &str) -> anyhow::Result<()> {
    server
        .post("/definitions", Body::Text(PUBLISH.to_owned()))
        .await?;
    let id = start(server, "rerun-publish", json!({"name": "ada"})).await?;
    status(server, &id, "failed").await?;
    let rerun = format!("/instances/{id}/rerun");

    let auditor = token(server, "aud", "auditor").await?;
    for (role, token) in [("approver", approver), ("auditor", auditor.as_str())] {
        let (code, _) = post_as(server, token, &rerun, json!({"from_step": "publish"})).await?;
        ensure!(code == 403, "an {role} may not re-run: {code}");
    }
    let (code, body) = post_as(
        server,
        analyst,
        &rerun,
        json!({
            "from_step": "publsh",
            "input": {"name": 5},
            "arguments": {"nope": {}, "publish": {"attempts": "two"}}
        }),
    )
    .await?;
    ensure!(code == 422, "{code}: {body}");
    let paths = detail_paths(&body);
    for path in ["input.name", "from_step", "arguments.nope"] {
        ensure!(paths.iter().any(|p| p == path), "{path} missing: {body}");
    }
    let (code, body) = post_as(
        server,
        analyst,
        &rerun,
        json!({"from_step": "publish", "arguments": {"publish": {"attempts": "two"}}}),
    )
    .await?;
    ensure!(
        code == 422 && detail_paths(&body) == ["arguments.publish"],
        "arguments against the action's schema: {code}: {body}"
    );

    let (code, body) = post_as(
        server,
        analyst,
        &rerun,
        json!({"from_step": "publish", "arguments": {"publish": {"attempts": 2}}}),
    )
    .await?;
    ensure!(code == 200, "{code}: {body}");
    let done = status(server, &id, "completed").await?;
    ensure!(
        done["output"] == json!({"name": "ada", "attempt": 2}),
        "{done}"
    );
    let reruns = events(server, &id, "instance_rerun").await?;
    ensure!(reruns.len() == 1, "{reruns:?}");
    ensure!(reruns[0]["actor"] == "ana", "{}", reruns[0]);
    ensure!(
        reruns[0]["data"]
            == json!({
                "from_step": "publish",
                "arguments": {"publish": {"attempts": 2}},
                "steps_reset": ["publish", "notify"]
            }),
        "{}",
        reruns[0]
    );
    let scheduled = events(server, &id, "step_scheduled").await?;
    ensure!(
        scheduled.iter().any(|event| event["data"]
            == json!({"step": "publish", "attempt": 2, "arguments": {"attempts": 2}})),
        "publish runs again as attempt 2 with the edited arguments: {scheduled:?}"
    );
    let prepared = events(server, &id, "step_succeeded").await?;
    ensure!(
        prepared
            .iter()
            .filter(|event| event["data"]["step"] == "prepare")
            .count()
            == 1,
        "upstream ran once: {prepared:?}"
    );

    // Without a step: only the output, with the new input.
    let (code, body) = post_as(server, analyst, &rerun, json!({"input": {"name": "bea"}})).await?;
    ensure!(code == 200, "{code}: {body}");
    let done = status(server, &id, "completed").await?;
    ensure!(
        done["output"] == json!({"name": "bea", "attempt": 2}),
        "{done}"
    );
    ensure!(events(server, &id, "instance_completed").await?.len() == 2);
    assert_replays(server, &id).await?;

    // The CLI re-runs another failed instance.
    let other = start(server, "rerun-publish", json!({"name": "cid"})).await?;
    status(server, &other, "failed").await?;
    let (_, stdout) = cli(
        server,
        analyst,
        &[
            "rerun",
            &other,
            "--from",
            "publish",
            "--arguments",
            r#"{"publish": {"attempts": 2}}"#,
        ],
    )?;
    let answer: Value = serde_json::from_str(&stdout).context("rerun prints JSON")?;
    ensure!(answer["id"] == other.as_str(), "{answer}");
    status(server, &other, "completed").await?;
    assert_replays(server, &other).await
}

async fn migration_cases(server: &Server, analyst: &str, approver: &str) -> anyhow::Result<()> {
    server
        .post("/definitions", Body::Text(MOVING_V1.to_owned()))
        .await?;
    let moves = start(server, "moving", json!({"path": "y"})).await?;
    let stays = start(server, "moving", json!({"path": "x"})).await?;
    status(server, &moves, "waiting").await?;
    status(server, &stays, "waiting").await?;
    let deployed = server
        .post("/definitions", Body::Text(MOVING_V2.to_owned()))
        .await?;
    ensure!(deployed["version"] == 2, "{deployed}");
    let migrations = "/definitions/moving/migrations";

    let (code, _) = post_as(server, approver, migrations, json!({"to_version": 2})).await?;
    ensure!(code == 403, "an approver may not migrate: {code}");
    let (code, body) = post_as(
        server,
        analyst,
        migrations,
        json!({"to_version": 2, "mapping": {"a": "nope"}}),
    )
    .await?;
    ensure!(
        code == 422 && detail_paths(&body) == ["mapping.a"],
        "{code}: {body}"
    );
    let (code, body) = post_as(
        server,
        analyst,
        &format!("/instances/{moves}/rerun"),
        json!({}),
    )
    .await?;
    ensure!(
        code == 409,
        "a waiting instance cannot be re-run: {code}: {body}"
    );

    let (_, stdout) = cli(
        server,
        analyst,
        &[
            "migrate",
            "moving",
            "--to",
            "2",
            "--mapping",
            r#"{"a": "start"}"#,
            "--dry-run",
        ],
    )?;
    let plan: Value = serde_json::from_str(&stdout).context("migrate prints JSON")?;
    ensure!(
        plan["dry_run"] == true && plan["compatible"] == 1 && plan["incompatible"] == 1,
        "{plan}"
    );
    let item = |plan: &Value, id: &str| {
        plan["instances"]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["instance_id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    ensure!(item(&plan, &moves)["compatible"] == true, "{plan}");
    let refused = item(&plan, &stays);
    ensure!(
        refused["compatible"] == false
            && refused["reasons"]
                == json!(["step \"x\" is succeeded and version 2 has no step \"x\""]),
        "{refused}"
    );
    ensure!(server.get(&format!("/instances/{moves}")).await?["version"] == 1);

    let (code, plan) = post_as(
        server,
        analyst,
        migrations,
        json!({"to_version": 2, "mapping": {"a": "start"}, "dry_run": false}),
    )
    .await?;
    ensure!(code == 200 && plan["migrated"] == 1, "{code}: {plan}");
    ensure!(item(&plan, &moves)["migrated"] == true, "{plan}");
    ensure!(item(&plan, &stays)["migrated"] == false, "{plan}");
    let moved = server.get(&format!("/instances/{moves}")).await?;
    ensure!(
        moved["version"] == 2 && moved["status"] == "waiting",
        "{moved}"
    );
    let migrated = events(server, &moves, "instance_migrated").await?;
    ensure!(
        migrated.len() == 1
            && migrated[0]["actor"] == "ana"
            && migrated[0]["data"]
                == json!({"from_version": 1, "to_version": 2, "mapping": {"a": "start"}}),
        "{migrated:?}"
    );
    assert_replays(server, &moves).await?;

    for id in [&moves, &stays] {
        server
            .post(
                &format!("/instances/{id}/signals/go"),
                Body::Json(json!({})),
            )
            .await?;
    }
    let done = status(server, &moves, "completed").await?;
    ensure!(
        done["output"] == json!({"b": {"v": 2}, "c": {"new": true}}),
        "the moved instance finished on version 2's steps: {done}"
    );
    let done = status(server, &stays, "completed").await?;
    ensure!(
        done["output"] == json!({"b": {"v": 1}}) && done["version"] == 1,
        "{done}"
    );
    assert_replays(server, &moves).await?;
    assert_replays(server, &stays).await
}

/// The export of everything verifies offline, with no server.
async fn export_verifies_offline(server: &Server) -> anyhow::Result<()> {
    let export = server
        .get_text_as(gridflow_tests::ADMIN_TOKEN, "/audit/export")
        .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, export)?;
    let output = Command::new(gridflow_binary()?)
        .args(["audit", "verify", "--file"])
        .arg(&file)
        .output()?;
    ensure!(
        output.status.success(),
        "offline verify failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rerun_and_migration_are_audited_and_replay() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let server = Server::start(&url)?;
        let analyst = token(&server, "ana", "analyst").await?;
        let approver = token(&server, "pat", "approver").await?;
        rerun_cases(&server, &analyst, &approver).await?;
        migration_cases(&server, &analyst, &approver).await?;
        export_verifies_offline(&server).await
    })
    .await
}
