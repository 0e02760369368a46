//! Commit failure is never success: faults injected into the group commit while instances
//! are being started, on SQLite (the database file "full", through `PRAGMA
//! max_page_count`, then space given back) and on PostgreSQL (every connection of the
//! database killed again and again with `pg_terminate_backend`, so some die mid-commit).
//!
//! Afterwards, read through connections that see only what is committed (and again
//! through a store opened afresh): every acknowledged start exists and completes, no
//! instance is left running, each step succeeded exactly once, and each history replays
//! to its stored state.

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, Error, SystemClock};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_store::test_util::{postgres_database, sqlite_file};
use gridflow_store::{InstanceFilter, InstanceReader};
use gridflow_tests::{assert_replay_matches, engine_with_store, wait_until};

const DEFINITION: &str = "id: durable-chain
steps:
  - id: a
    action: core.noop
  - id: b
    action: core.noop
    needs: [a]
  - id: c
    action: core.noop
    needs: [b]
";
const STEPS: [&str; 3] = ["a", "b", "c"];

/// Instances started by a few tasks in a loop, and what each start answered.
struct Load {
    acknowledged: Arc<Mutex<Vec<InstanceId>>>,
    refused: Arc<AtomicUsize>,
    unexpected: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(engine: &Engine, workers: usize) -> Self {
        let load = Self {
            acknowledged: Arc::default(),
            refused: Arc::default(),
            unexpected: Arc::default(),
            stop: Arc::default(),
            workers: Vec::new(),
        };
        let workers = (0..workers)
            .map(|_| {
                let engine = engine.clone();
                let acknowledged = load.acknowledged.clone();
                let refused = load.refused.clone();
                let unexpected = load.unexpected.clone();
                let stop = load.stop.clone();
                tokio::spawn(async move {
                    let definition = DefinitionId::from("durable-chain");
                    while !stop.load(Ordering::Acquire) {
                        match engine
                            .start_instance(&definition, None, json!({}), "durability-test")
                            .await
                        {
                            Ok(id) => acknowledged.lock().unwrap().push(id),
                            Err(Error::Unavailable(_)) => {
                                refused.fetch_add(1, Ordering::AcqRel);
                            }
                            Err(other) => unexpected.lock().unwrap().push(other.to_string()),
                        }
                        // Pacing, so that the load is steady rather than a flood.
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                })
            })
            .collect();
        Self { workers, ..load }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::Acquire)
    }

    /// Stops the load; returns the acknowledged instances and the number refused.
    async fn finish(self) -> anyhow::Result<(Vec<InstanceId>, usize)> {
        self.stop.store(true, Ordering::Release);
        for worker in self.workers {
            worker.await?;
        }
        let unexpected = self.unexpected.lock().unwrap().clone();
        ensure!(
            unexpected.is_empty(),
            "starts failed with other errors than unavailable: {unexpected:?}"
        );
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        Ok((acknowledged, self.refused.load(Ordering::Acquire)))
    }
}

/// An engine on `store` with the suite's definition deployed.
async fn deployed_engine(store: SqlStore) -> anyhow::Result<Engine> {
    let engine = engine_with_store(
        Arc::new(store),
        Arc::new(SystemClock),
        EngineOptions::default(),
    )
    .await?;
    engine.deploy(DEFINITION).await?;
    Ok(engine)
}

/// Runs the load, applies `fault` once some starts were acknowledged, keeps it until it
/// has refused starts for at least `hold` (or, with `must_refuse: false`, until `hold`
/// passed), lifts it with `heal`, and waits until starts are acknowledged again.
async fn load_through_fault<F, H>(
    engine: &Engine,
    fault: F,
    heal: H,
    hold: Duration,
    must_refuse: bool,
) -> anyhow::Result<(Vec<InstanceId>, usize)>
where
    F: AsyncFnOnce() -> anyhow::Result<()>,
    H: AsyncFnOnce() -> anyhow::Result<()>,
{
    let load = Load::start(engine, 4);
    wait_until(
        Duration::from_secs(30),
        "starts before the fault",
        || async { Ok((load.acknowledged() >= 50).then_some(())) },
    )
    .await?;
    fault().await?;
    let faulty_since = Instant::now();
    let before = load.refused();
    wait_until(
        hold + Duration::from_secs(30),
        "starts refused under the fault",
        || async {
            let refused = load.refused() > before || !must_refuse;
            Ok((refused && faulty_since.elapsed() >= hold).then_some(()))
        },
    )
    .await?;
    heal().await?;
    let acknowledged_at_heal = load.acknowledged();
    wait_until(
        Duration::from_secs(30),
        "starts after the fault",
        || async { Ok((load.acknowledged() >= acknowledged_at_heal + 50).then_some(())) },
    )
    .await?;
    load.finish().await
}

/// Every acknowledged instance completes with each step succeeded once; nothing of the
/// definition is left unfinished; the same holds read through a store opened afresh.
async fn assert_all_durable(
    engine: &Engine,
    url: &str,
    acknowledged: &[InstanceId],
) -> anyhow::Result<()> {
    wait_until(
        Duration::from_secs(90),
        "every acknowledged instance to complete",
        || async {
            for id in acknowledged {
                match engine.instance(id).await {
                    Ok(view) if view.status == InstanceStatus::Completed => {}
                    Ok(_) => return Ok(None),
                    Err(Error::NotFound(_)) => {
                        anyhow::bail!("acknowledged instance {id} is not in the database")
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    // Nothing else of the definition is stuck either (a commit that reported an error
    // but landed must run on too).
    wait_until(
        Duration::from_secs(60),
        "no instance left unfinished",
        || async {
            let filter = InstanceFilter {
                status: Some(InstanceStatus::Running),
                definition: Some(DefinitionId::from("durable-chain")),
            };
            let page = engine.list_instances(&filter, None, 10).await?;
            Ok(page.items.is_empty().then_some(()))
        },
    )
    .await?;

    let fresh = SqlStore::connect(url, SqlOptions::default()).await?;
    for id in acknowledged {
        let record = fresh
            .instance(id)
            .await
            .with_context(|| format!("acknowledged instance {id}, read afresh"))?;
        ensure!(
            record.status == InstanceStatus::Completed,
            "instance {id} is {} when read afresh",
            record.status
        );
        let history = fresh.history(id).await?;
        let mut succeeded: BTreeMap<String, usize> = BTreeMap::new();
        for event in &history {
            if event.event_type == "step_succeeded" {
                let step = event.data["step"].as_str().unwrap_or_default().to_owned();
                *succeeded.entry(step).or_default() += 1;
            }
        }
        let expected: BTreeMap<String, usize> =
            STEPS.iter().map(|step| ((*step).to_owned(), 1)).collect();
        ensure!(
            succeeded == expected,
            "instance {id}: step_succeeded per step {succeeded:?}"
        );
        assert_replay_matches(engine, id).await?;
    }
    fresh.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_full_disk_never_acknowledges_a_lost_start() -> anyhow::Result<()> {
    let (_folder, url) = sqlite_file();
    let store = SqlStore::connect(&url, SqlOptions::default()).await?;
    let engine = deployed_engine(store.clone()).await?;
    let (acknowledged, refused) = load_through_fault(
        &engine,
        async || {
            store.limit_sqlite_pages(Some(1));
            Ok(())
        },
        async || {
            store.limit_sqlite_pages(None);
            Ok(())
        },
        Duration::from_secs(2),
        true,
    )
    .await?;
    eprintln!(
        "sqlite: {} starts acknowledged, {refused} refused while the file was full",
        acknowledged.len()
    );
    ensure!(
        refused > 0,
        "the full disk refused no start: nothing was tested"
    );
    assert_all_durable(&engine, &url, &acknowledged).await
}

/// Terminates every other connection to `database`, again and again until `stop`;
/// returns how many it terminated.
async fn kill_connections(
    admin_url: String,
    database: String,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let admin = Database::connect(admin_url.as_str()).await?;
    let mut killed = 0;
    while !stop.load(Ordering::Acquire) {
        let rows = admin
            .query_all_raw(sea_orm::Statement::from_string(
                admin.get_database_backend(),
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                ),
            ))
            .await?;
        killed += rows.len() as u64;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    admin.close().await?;
    Ok(killed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_killed_mid_commit_never_acknowledge_a_lost_start()
-> anyhow::Result<()> {
    let Some(database) = postgres_database().await else {
        return Ok(());
    };
    let admin_url = std::env::var("DATABASE_URL")?;
    let store = SqlStore::connect(&database.url, SqlOptions::default()).await?;
    let engine = deployed_engine(store).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let killer = Arc::new(Mutex::new(None));
    let outcome = load_through_fault(
        &engine,
        async || {
            let task = tokio::spawn(kill_connections(
                admin_url.clone(),
                database.name().to_owned(),
                stop.clone(),
            ));
            *killer.lock().unwrap() = Some(task);
            Ok(())
        },
        async || {
            stop.store(true, Ordering::Release);
            let task = killer.lock().unwrap().take().context("no killer")?;
            let killed = task.await??;
            eprintln!("postgres: {killed} connections terminated");
            ensure!(
                killed > 0,
                "no connection was terminated: nothing was tested"
            );
            Ok(())
        },
        Duration::from_secs(3),
        false,
    )
    .await;
    let checked = match outcome {
        Ok((acknowledged, refused)) => {
            eprintln!(
                "postgres: {} starts acknowledged, {refused} refused while connections were killed",
                acknowledged.len()
            );
            assert_all_durable(&engine, &database.url, &acknowledged).await
        }
        Err(error) => Err(error),
    };
    drop(engine);
    database.drop().await;
    checked
}
