//! gridflow-bench: the engine's throughput and memory benchmarks (issue 2, W1–W3), the
//! approval decision latency (issue 3, W4), and the cost of one large instance and of
//! signal delivery among many waiting ones (issue 12, W5 fan-out and W6 correlation, in
//! `fan_out.rs` and `correlation.rs`).
//!
//! Runs the real engine in this process on a fresh SQLite file (or on PostgreSQL with
//! `--database-url`) and prints its figures. The process is the server: the RSS it
//! reports is the engine's.
//!
//! ```text
//! cargo run --release --bin gridflow-bench -- all
//! cargo run --release --bin gridflow-bench -- w1 --instances 1000 --in-flight 50
//! cargo run --release --bin gridflow-bench -- w2 --waiting 100000
//! cargo run --release --bin gridflow-bench -- w4 --pending-approvals 10000 --decisions 1000
//! cargo run --release --bin gridflow-bench -- w5 --fan-out-small 1000 --fan-out-large 100000
//! cargo run --release --bin gridflow-bench -- w6 --correlated-waiting 100000 --signals 1000
//! ```
#![allow(clippy::print_stdout)] // A benchmark's job is to print its figures.

mod correlation;
mod fan_out;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde_json::json;
use tokio::sync::Semaphore;

use gridflow_connectors::Registry;
use gridflow_core::limits::Limits;
use gridflow_core::{DefinitionId, InstanceStatus};
use gridflow_runtime::{Engine, EngineOptions, SystemClock};
use gridflow_store::sql::{SqlOptions, SqlStore, SqliteSynchronous};

/// mimalloc: the engine allocates and frees many small JSON values per commit, where the
/// system allocator spent about a fifth of the W1 benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "gridflow-bench",
    about = "gridflow engine benchmarks (W1 sequential, W2 waiting, W3 retry, W4 approvals, \
             W5 fan-out, W6 correlation)"
)]
struct Args {
    /// Which workload to run.
    #[arg(value_enum, default_value = "all")]
    workload: Workload,
    /// Database; a fresh SQLite file in a temporary folder when absent.
    #[arg(long, env = "GRIDFLOW_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// SQLite durability.
    #[arg(long, value_enum, default_value = "full")]
    sqlite_synchronous: Synchronous,
    /// W1: instances in all.
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    /// W1: steps per instance.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// W1: instances running at once.
    #[arg(long, default_value_t = 50)]
    in_flight: usize,
    /// W2: instances left waiting on a one-hour sleep.
    #[arg(long, default_value_t = 100_000)]
    waiting: usize,
    /// Gather the next commit while the previous one is written.
    #[arg(long)]
    pipeline_commits: bool,
    /// Write each instance's whole state at every commit (as before amortized snapshots),
    /// to compare the two in one run.
    #[arg(long)]
    snapshot_every_commit: bool,
    /// `limits.max_steps`: the most steps a definition may have (W1 with more `--steps`).
    #[arg(long, default_value_t = 1000)]
    max_steps: u32,
    /// W3: instances whose step fails twice before it succeeds.
    #[arg(long, default_value_t = 200)]
    retry_instances: usize,
    /// W4: approvals left pending.
    #[arg(long, default_value_t = 10_000)]
    pending_approvals: usize,
    /// W4: how many of them are decided, one at a time, to measure the latency.
    #[arg(long, default_value_t = 1_000)]
    decisions: usize,
    /// W5: items of the small fan-out (the reference rate).
    #[arg(long, default_value_t = 1_000)]
    fan_out_small: usize,
    /// W5: items of the large fan-out.
    #[arg(long, default_value_t = 100_000)]
    fan_out_large: usize,
    /// W5: the fan-out's `concurrency`.
    #[arg(long, default_value_t = 50)]
    fan_out_concurrency: u32,
    /// W6: instances left waiting on a correlated signal.
    #[arg(long, default_value_t = 100_000)]
    correlated_waiting: usize,
    /// W6: signals delivered one at a time, each matching one waiting instance.
    #[arg(long, default_value_t = 1_000)]
    signals: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    All,
    W1,
    W2,
    W3,
    /// Approval decision latency with many approvals pending.
    W4,
    /// One instance fanning out over many items: items/s and RSS at two sizes.
    W5,
    /// Correlated signal delivery latency with many instances waiting.
    W6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Synchronous {
    Full,
    Normal,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let temp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            temp.path().join("bench.db").display()
        ),
    };
    let options = SqlOptions {
        sqlite_synchronous: match args.sqlite_synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        },
        ..SqlOptions::default()
    };
    let store = SqlStore::connect(&url, options)
        .await
        .with_context(|| format!("cannot open {}", redact(&url)))?;
    let engine = Engine::start(
        Arc::new(store),
        Arc::new(Registry::with_builtin()),
        Arc::new(SystemClock),
        EngineOptions {
            pipeline_commits: args.pipeline_commits,
            snapshot_every_commit: args.snapshot_every_commit,
            limits: Limits {
                max_steps: NonZeroU32::new(args.max_steps)
                    .context("--max-steps must be at least 1")?,
                ..Limits::default()
            },
            ..EngineOptions::default()
        },
    )
    .await?;
    println!(
        "gridflow-bench on {} (synchronous={:?}, pipelined commits: {}, state at every commit: {})",
        redact(&url),
        args.sqlite_synchronous,
        args.pipeline_commits,
        args.snapshot_every_commit
    );
    println!(
        "cores: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    if matches!(args.workload, Workload::All | Workload::W1) {
        w1_sequential(&engine, &args).await?;
    }
    if matches!(args.workload, Workload::All | Workload::W3) {
        w3_retry(&engine, &args).await?;
    }
    if matches!(args.workload, Workload::All | Workload::W4) {
        w4_approvals(&engine, &args).await?;
    }
    if matches!(args.workload, Workload::All | Workload::W5) {
        fan_out::w5_fan_out(&engine, &args).await?;
    }
    if matches!(args.workload, Workload::All | Workload::W6) {
        correlation::w6_correlation(&engine, &args).await?;
    }
    // W2 last: it leaves its instances waiting for an hour.
    if matches!(args.workload, Workload::All | Workload::W2) {
        w2_waiting(&engine, &args).await?;
    }
    Ok(())
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_and_user, host)) if url.starts_with("postgres") => {
            let scheme = scheme_and_user.split("://").next().unwrap_or("postgres");
            format!("{scheme}://…@{host}")
        }
        Some(_) | None => url.to_owned(),
    }
}

/// W1: `instances` × `steps` `core.noop` steps, `in_flight` instances at once.
async fn w1_sequential(engine: &Engine, args: &Args) -> anyhow::Result<()> {
    let mut yaml = String::from("id: bench-w1\nsteps:\n");
    for step in 0..args.steps {
        yaml.push_str(&format!("  - id: s{step}\n    action: core.noop\n"));
        if step > 0 {
            yaml.push_str(&format!("    needs: [s{}]\n", step - 1));
        }
    }
    engine.deploy(&yaml).await?;
    let definition = DefinitionId::from("bench-w1");
    let before = engine.stats();
    let started_at = Instant::now();
    // `in_flight` workers, each starting an instance and waiting for it to finish before
    // it starts the next, until `instances` have run.
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(args.instances));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.in_flight {
        let engine = engine.clone();
        let definition = definition.clone();
        let remaining = remaining.clone();
        workers.spawn(async move {
            let mut finished = engine.subscribe_finished();
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            while remaining
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |left| left.checked_sub(1),
                )
                .is_ok()
            {
                let begun = Instant::now();
                let id = engine
                    .start_instance(&definition, None, json!({}), "bench")
                    .await?;
                loop {
                    let (done, status) = finished.recv().await.context("engine stopped")?;
                    if done == id {
                        if status == InstanceStatus::Completed {
                            latencies.push(begun.elapsed());
                        } else {
                            failed += 1;
                        }
                        break;
                    }
                }
            }
            anyhow::Ok((latencies, failed))
        });
    }
    let mut latencies = Vec::with_capacity(args.instances);
    let mut failed = 0;
    while let Some(worker) = workers.join_next().await {
        let (worker_latencies, worker_failed) = worker??;
        latencies.extend(worker_latencies);
        failed += worker_failed;
    }
    let elapsed = started_at.elapsed();
    let after = engine.stats();
    if failed > 0 {
        bail!("W1: {failed} instances did not complete");
    }
    latencies.sort();
    let steps = (args.instances * args.steps) as f64;
    let commits = after.commits - before.commits;
    println!(
        "W1 sequential: {} instances x {} core.noop steps, {} in flight",
        args.instances, args.steps, args.in_flight
    );
    println!("  elapsed            {:.2} s", elapsed.as_secs_f64());
    println!(
        "  instances/s        {:.0}",
        args.instances as f64 / elapsed.as_secs_f64()
    );
    println!("  durable steps/s    {:.0}", steps / elapsed.as_secs_f64());
    println!(
        "  events/s           {:.0}",
        (after.committed_events - before.committed_events) as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  group commits      {} ({:.1} instance writes per commit)",
        commits,
        (after.committed_instances - before.committed_instances) as f64 / commits.max(1) as f64
    );
    let cycle_ms = (after.cycle_micros - before.cycle_micros) as f64 / 1000.0;
    let commit_ms = (after.commit_micros - before.commit_micros) as f64 / 1000.0;
    println!(
        "  driver busy        {:.0} ms, of which {:.0} ms in store commits ({:.2} ms per commit)",
        cycle_ms,
        commit_ms,
        commit_ms / commits.max(1) as f64
    );
    println!(
        "  latency p50        {:.1} ms",
        millis(percentile(&latencies, 0.50))
    );
    println!(
        "  latency p99        {:.1} ms",
        millis(percentile(&latencies, 0.99))
    );
    print_memory("  ");
    Ok(())
}

/// W2: `waiting` instances, each runs one step and then sleeps for an hour.
async fn w2_waiting(engine: &Engine, args: &Args) -> anyhow::Result<()> {
    engine
        .deploy(
            "id: bench-w2\nsteps:\n  - id: first\n    action: core.noop\n  - id: nap\n    needs: [first]\n    sleep: 1h\n",
        )
        .await?;
    let definition = DefinitionId::from("bench-w2");
    let before = engine.stats();
    let started_at = Instant::now();
    let permits = Arc::new(Semaphore::new(512));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.waiting {
        let permit = permits.clone().acquire_owned().await?;
        let engine = engine.clone();
        let definition = definition.clone();
        tasks.spawn(async move {
            let _permit = permit;
            engine
                .start_instance(&definition, None, json!({}), "bench")
                .await
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let starts_done = started_at.elapsed();
    // Each instance writes five events before it waits: started, the first step's
    // scheduled, started and succeeded, and the sleep's scheduled.
    let expected_events = before.committed_events + 5 * args.waiting as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while engine.stats().committed_events < expected_events {
        if Instant::now() > deadline {
            bail!("W2: instances did not all reach their sleep within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_waiting = started_at.elapsed();
    let sample = engine
        .list_instances(
            &gridflow_store::InstanceFilter {
                status: Some(InstanceStatus::Waiting),
                definition: Some(definition.clone()),
            },
            None,
            5,
        )
        .await?;
    if sample.items.len() < 5.min(args.waiting) {
        bail!(
            "W2: expected waiting instances, found {}",
            sample.items.len()
        );
    }
    println!(
        "W2 waiting: {} instances each waiting on `sleep: 1h`",
        args.waiting
    );
    println!(
        "  all started        {:.2} s ({:.0} starts/s)",
        starts_done.as_secs_f64(),
        args.waiting as f64 / starts_done.as_secs_f64()
    );
    println!("  all waiting        {:.2} s", all_waiting.as_secs_f64());
    print_memory("  ");
    Ok(())
}

/// W3: `retry_instances` instances whose step fails twice (10 ms backoff) then succeeds.
async fn w3_retry(engine: &Engine, args: &Args) -> anyhow::Result<()> {
    engine
        .deploy(
            "id: bench-w3\nsteps:\n  - id: flaky\n    action: core.fail_until\n    with: {attempts: 3}\n    retry: {max_attempts: 5, initial_interval: 10ms, multiplier: 1.0, jitter: false}\n",
        )
        .await?;
    let definition = DefinitionId::from("bench-w3");
    let mut finished = engine.subscribe_finished();
    let started_at = Instant::now();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..args.retry_instances {
        ids.insert(
            engine
                .start_instance(&definition, None, json!({}), "bench")
                .await?,
        );
    }
    let mut done = 0;
    while done < args.retry_instances {
        let (id, status) = finished.recv().await.context("engine stopped")?;
        if ids.contains(&id) {
            if status != InstanceStatus::Completed {
                bail!("W3: instance {id} ended {status}");
            }
            done += 1;
        }
    }
    let elapsed = started_at.elapsed();
    let mut attempts = Vec::with_capacity(ids.len());
    for id in &ids {
        let view = engine.instance(id).await?;
        attempts.push(
            view.steps
                .get("flaky")
                .map(|step| step.attempts)
                .unwrap_or(0),
        );
    }
    attempts.sort_unstable();
    println!(
        "W3 retry: {} instances, core.fail_until {{attempts: 3}}, 10 ms backoff",
        args.retry_instances
    );
    println!("  total time         {:.2} s", elapsed.as_secs_f64());
    println!(
        "  attempts/instance  min {} max {} (all {})",
        attempts.first().copied().unwrap_or(0),
        attempts.last().copied().unwrap_or(0),
        if attempts.iter().all(|count| *count == 3) {
            "3, as expected"
        } else {
            "NOT all 3"
        }
    );
    if attempts.iter().any(|count| *count != 3) {
        bail!("W3: every instance should record exactly 3 attempts");
    }
    Ok(())
}

/// W4: `pending_approvals` instances wait on an approval; `decisions` of them are approved
/// one at a time. Prints the latency from the decision call to its acceptance (durable,
/// with the next step dispatched) and to the instance's completion (the next step ran).
async fn w4_approvals(engine: &Engine, args: &Args) -> anyhow::Result<()> {
    engine
        .deploy(
            "id: bench-w4\nsteps:\n  - id: review\n    approval: {title: bench, users: [approver], quorum: 1}\n  - id: next\n    needs: [review]\n    action: core.noop\n",
        )
        .await?;
    let definition = DefinitionId::from("bench-w4");
    let started_at = Instant::now();
    let permits = Arc::new(Semaphore::new(512));
    let mut tasks = tokio::task::JoinSet::new();
    let mut instances = Vec::with_capacity(args.pending_approvals);
    for _ in 0..args.pending_approvals {
        let permit = permits.clone().acquire_owned().await?;
        let engine = engine.clone();
        let definition = definition.clone();
        tasks.spawn(async move {
            let _permit = permit;
            engine
                .start_instance(&definition, None, json!({}), "bench")
                .await
        });
        while let Some(done) = tasks.try_join_next() {
            instances.push(done??);
        }
    }
    while let Some(done) = tasks.join_next().await {
        instances.push(done??);
    }
    let pending_after = started_at.elapsed();
    let approver = gridflow_runtime::Approver {
        user: "approver",
        groups: &[],
    };
    let first_page = engine
        .list_approvals(
            &approver,
            Some(gridflow_core::ApprovalStatus::Pending),
            None,
            50,
        )
        .await?;
    if first_page.items.len() < 50.min(args.pending_approvals) {
        bail!(
            "W4: expected pending approvals, found {}",
            first_page.items.len()
        );
    }
    let mut finished = engine.subscribe_finished();
    let mut accepted = Vec::with_capacity(args.decisions);
    let mut completed = Vec::with_capacity(args.decisions);
    for instance in instances.iter().take(args.decisions) {
        let id = gridflow_core::approval::approval_id(
            instance,
            &gridflow_core::StepId::from("review"),
            1,
        );
        let decided_at = Instant::now();
        let view = engine
            .decide(
                &id,
                &approver,
                gridflow_runtime::DecisionRequest::Decide {
                    decision: gridflow_core::Verdict::Approve,
                    comment: None,
                    data: serde_json::Value::Null,
                },
            )
            .await?;
        accepted.push(decided_at.elapsed());
        if view.status != "approved" {
            bail!("W4: approval {id} is {} after the decision", view.status);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (done, status) = tokio::time::timeout_at(deadline.into(), finished.recv())
                .await
                .context("W4: the instance did not finish within 30 s")??;
            if &done == instance {
                if status != InstanceStatus::Completed {
                    bail!("W4: instance {done} ended {status}");
                }
                break;
            }
        }
        completed.push(decided_at.elapsed());
    }
    accepted.sort();
    completed.sort();
    println!(
        "W4 approvals: {} pending approvals, {} decided one at a time",
        args.pending_approvals, args.decisions
    );
    println!(
        "  all pending        {:.2} s ({:.0} starts/s)",
        pending_after.as_secs_f64(),
        args.pending_approvals as f64 / pending_after.as_secs_f64()
    );
    println!(
        "  decision accepted  p50 {:.2} ms  p99 {:.2} ms  (durable; next step dispatched)",
        millis(percentile(&accepted, 0.50)),
        millis(percentile(&accepted, 0.99))
    );
    println!(
        "  next step done     p50 {:.2} ms  p99 {:.2} ms  (instance completed)",
        millis(percentile(&completed, 0.50)),
        millis(percentile(&completed, 0.99))
    );
    print_memory("  ");
    Ok(())
}

pub(crate) fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub(crate) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Prints current and peak resident memory of this process (Linux `/proc/self/status`).
pub(crate) fn print_memory(indent: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(peak)) => println!(
            "{indent}RSS                {:.1} MB (peak {:.1} MB)",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        ),
        _ => println!("{indent}RSS                unknown (no /proc/self/status)"),
    }
}
