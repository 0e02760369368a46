//! Amortized state snapshots on every backend (issue 10, item 4: the per-step cost of a
//! long instance does not grow with what it ran so far).
//!
//! - A 300-step chain writes its whole state a few times, not at every commit: the bytes
//!   of all snapshots it wrote stay within a small multiple of its final state, while
//!   writing the state at every commit (the old way, still an option) writes far more.
//! - An instance whose stored snapshot is older than its history (it ran steps and now
//!   waits) is read whole by a new engine on the same database, as after a crash: the
//!   view shows every step, replay matches, and it runs on to completion.

use std::sync::Arc;

use anyhow::{Context, ensure};
use serde_json::json;

use gridflow_core::{DefinitionId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, StatsSnapshot, SystemClock};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_store::{InstanceReader, InstanceRecord};
use gridflow_tests::{assert_replay_matches, engine_on, on_every_database, wait_for_status};

/// An engine on `url`, writing the whole state at every commit or only when due.
async fn engine_for(url: &str, snapshot_every_commit: bool) -> anyhow::Result<Engine> {
    let options = EngineOptions {
        snapshot_every_commit,
        ..EngineOptions::default()
    };
    engine_on(url, Arc::new(SystemClock), options).await
}

/// A chain of `steps` echo steps, each echoing 400 bytes, then (with `wait`) a wait for
/// the signal `go` and one last step.
fn chain(id: &str, steps: usize, wait: bool) -> String {
    let mut yaml = format!("id: {id}\nsteps:\n");
    for index in 0..steps {
        yaml.push_str(&format!(
            "  - id: s{index}\n    action: core.echo\n    with: {{n: {index}, text: \"{}\"}}\n",
            "x".repeat(400)
        ));
        if index > 0 {
            yaml.push_str(&format!("    needs: [s{}]\n", index - 1));
        }
    }
    if wait {
        yaml.push_str(&format!(
            "  - id: hold\n    needs: [s{}]\n    wait: {{signal: go}}\n  - id: last\n    needs: [hold]\n    action: core.noop\n",
            steps - 1
        ));
    }
    yaml
}

/// Runs a 300-step chain to completion; returns the engine's counters and the stored row.
async fn run_chain(
    url: &str,
    snapshot_every_commit: bool,
) -> anyhow::Result<(StatsSnapshot, InstanceRecord)> {
    let engine = engine_for(url, snapshot_every_commit).await?;
    let name = if snapshot_every_commit {
        "chain-every-commit"
    } else {
        "chain-amortized"
    };
    engine.deploy(&chain(name, 300, false)).await?;
    let id = engine
        .start_instance(&DefinitionId::from(name), None, json!({}), "tester")
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    assert_replay_matches(&engine, &id).await?;
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    let record = store.instance(&id).await?;
    Ok((engine.stats(), record))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chain_writes_its_state_a_few_times_not_at_every_commit() -> anyhow::Result<()> {
    on_every_database(async |url: String| {
        let (amortized, record) = run_chain(&url, false).await?;
        let final_bytes = gridflow_core::limits::serialized_size(&record.state);
        ensure!(
            record.snapshot_seq == record.last_seq,
            "a finished instance has a current snapshot"
        );
        eprintln!(
            "amortized: {} commits, {} snapshots, {} snapshot bytes; final state {final_bytes} bytes",
            amortized.commits, amortized.snapshots_written, amortized.snapshot_bytes
        );
        ensure!(
            amortized.snapshot_bytes <= 4 * final_bytes,
            "snapshots wrote {} bytes, over 4 x the final state ({final_bytes})",
            amortized.snapshot_bytes
        );
        ensure!(
            amortized.snapshots_written < amortized.commits / 10,
            "{} snapshots in {} commits",
            amortized.snapshots_written,
            amortized.commits
        );

        // The old way, for contrast: the bound above is one it would break by far.
        let (every, _) = run_chain(&url, true).await?;
        eprintln!(
            "every commit: {} commits, {} snapshots, {} snapshot bytes",
            every.commits, every.snapshots_written, every.snapshot_bytes
        );
        ensure!(
            every.snapshot_bytes > 20 * final_bytes,
            "writing the state at every commit wrote only {} bytes",
            every.snapshot_bytes
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_snapshot_is_brought_up_to_date_after_a_restart() -> anyhow::Result<()> {
    on_every_database(async |url: String| {
        let id = {
            let engine = engine_for(&url, false).await?;
            engine.deploy(&chain("chain-wait", 20, true)).await?;
            let id = engine
                .start_instance(&DefinitionId::from("chain-wait"), None, json!({}), "tester")
                .await?;
            wait_for_status(&engine, &id, InstanceStatus::Waiting).await?;
            id
        };
        // The first engine is gone, as after a crash; its row's snapshot is older than
        // its history.
        let store = SqlStore::connect(&url, SqlOptions::default()).await?;
        let stored = store.instance(&id).await?;
        ensure!(
            stored.snapshot_seq < stored.last_seq,
            "the snapshot is current (seq {} of {}): nothing to fold",
            stored.snapshot_seq,
            stored.last_seq
        );

        let engine = engine_for(&url, false).await?;
        let view = engine.instance(&id).await?;
        ensure!(view.status == InstanceStatus::Waiting, "{view:?}");
        for index in 0..20 {
            let step = view
                .steps
                .get(&format!("s{index}"))
                .with_context(|| format!("step s{index} is missing from the view"))?;
            ensure!(
                step.output
                    .as_ref()
                    .is_some_and(|output| output["n"] == index),
                "step s{index}: {step:?}"
            );
        }
        assert_replay_matches(&engine, &id).await?;

        engine.signal(&id, "go", json!({}), "tester").await?;
        wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
        assert_replay_matches(&engine, &id).await?;
        let stored = store.instance(&id).await?;
        ensure!(stored.snapshot_seq == stored.last_seq, "final snapshot");
        Ok(())
    })
    .await
}
