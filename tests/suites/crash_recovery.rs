//! Crash recovery: the real binary is killed with SIGKILL in the middle of a run and
//! restarted on the same database. Every instance must complete, with exactly one
//! `step_succeeded` per step, and its replayed history must equal its stored state.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_tests::{Body, Server, on_every_database, wait_until};

const INSTANCES: usize = 150;
const STEPS: usize = 10;

fn chain_definition() -> String {
    let mut yaml = String::from("id: crash-chain\nsteps:\n");
    for step in 0..STEPS {
        // Each step takes a little while, so the kill lands mid-run.
        yaml.push_str(&format!(
            "  - id: s{step}\n    action: core.delay\n    with: {{ms: 40}}\n"
        ));
        if step > 0 {
            yaml.push_str(&format!("    needs: [s{}]\n", step - 1));
        }
    }
    yaml
}

async fn instances(server: &Server) -> anyhow::Result<Vec<Value>> {
    let page = server
        .get("/instances?definition=crash-chain&limit=500")
        .await?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

fn succeeded_steps(instance: &Value) -> usize {
    instance["steps"]
        .as_object()
        .map(|steps| {
            steps
                .values()
                .filter(|step| step["status"] == "succeeded")
                .count()
        })
        .unwrap_or(0)
}

async fn crash_and_recover(database_url: &str) -> anyhow::Result<()> {
    let server = Server::start(database_url)?;
    server
        .post("/definitions", Body::Text(chain_definition()))
        .await?;
    let mut ids = Vec::with_capacity(INSTANCES);
    for _ in 0..INSTANCES {
        let started = server
            .post(
                "/definitions/crash-chain/instances",
                Body::Json(json!({"input": {}})),
            )
            .await?;
        ids.push(
            started["instance_id"]
                .as_str()
                .context("no instance_id")?
                .to_owned(),
        );
    }
    // Kill once a fifth of all steps succeeded, well before the end.
    let progress_at_kill = wait_until(Duration::from_secs(60), "a fifth of the steps", || async {
        let listed = instances(&server).await?;
        let done: usize = listed.iter().map(succeeded_steps).sum();
        Ok((done >= INSTANCES * STEPS / 5).then_some(done))
    })
    .await?;
    server.kill()?;
    ensure!(
        progress_at_kill < INSTANCES * STEPS,
        "the run finished before the kill ({progress_at_kill} steps), so nothing was tested"
    );

    let server = Server::start(database_url)?;
    wait_until(
        Duration::from_secs(120),
        "every instance to complete",
        || async {
            let listed = instances(&server).await?;
            let completed = listed
                .iter()
                .filter(|instance| instance["status"] == "completed")
                .count();
            Ok((listed.len() == INSTANCES && completed == INSTANCES).then_some(()))
        },
    )
    .await?;

    for id in &ids {
        let history = server.get(&format!("/instances/{id}/history")).await?;
        let mut succeeded: BTreeMap<String, usize> = BTreeMap::new();
        for event in history["events"].as_array().context("no events")? {
            if event["type"] == "step_succeeded" && event["data"].get("item").is_none() {
                let step = event["data"]["step"]
                    .as_str()
                    .context("no step")?
                    .to_owned();
                *succeeded.entry(step).or_default() += 1;
            }
        }
        ensure!(
            succeeded.len() == STEPS && succeeded.values().all(|count| *count == 1),
            "instance {id}: step_succeeded per step {succeeded:?}"
        );
        let replay = server.get(&format!("/instances/{id}/replay")).await?;
        ensure!(
            replay["matches_stored"] == Value::Bool(true),
            "instance {id}: replayed state differs from the stored state: {replay}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_resumes_every_instance_without_duplicating_a_step() {
    on_every_database(|url| async move { crash_and_recover(&url).await })
        .await
        .unwrap();
}
