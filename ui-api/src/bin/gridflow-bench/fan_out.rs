//! W5 fan-out (issue 12): one instance runs `for_each` over N items of `core.noop` with
//! `concurrency: 50`, at a small and a large N. What an item costs must not grow with the
//! instance: the large fan-out's items/s is compared with the small one's.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use gridflow_core::{DefinitionId, InstanceStatus};
use gridflow_runtime::Engine;

use crate::{Args, print_memory};

/// Runs the small then the large fan-out and prints their rates, their ratio and the RSS.
pub(crate) async fn w5_fan_out(engine: &Engine, args: &Args) -> anyhow::Result<()> {
    engine
        .deploy(&format!(
            "id: bench-w5\nsteps:\n  - id: each\n    for_each: \"${{input.items}}\"\n    \
             concurrency: {}\n    action: core.noop\n",
            args.fan_out_concurrency
        ))
        .await?;
    println!(
        "W5 fan-out: one instance, for_each over N items of core.noop, concurrency {}",
        args.fan_out_concurrency
    );
    // The small fan-out lasts a tenth of a second, so a few slow fsyncs sway its rate:
    // the reference is the median of three runs.
    let mut small = Vec::new();
    for _ in 0..3 {
        small.push(run(engine, args.fan_out_small).await?);
    }
    small.sort_by(f64::total_cmp);
    let small = small[1];
    let large = run(engine, args.fan_out_large).await?;
    println!(
        "  large/small rate   {:.0}% (N = {} vs the median of N = {})",
        100.0 * large / small.max(f64::MIN_POSITIVE),
        args.fan_out_large,
        args.fan_out_small
    );
    Ok(())
}

/// One fan-out over `items` items; returns its items/s.
async fn run(engine: &Engine, items: usize) -> anyhow::Result<f64> {
    let definition = DefinitionId::from("bench-w5");
    let input = json!({ "items": (0..items).collect::<Vec<usize>>() });
    let before = engine.stats();
    let mut finished = engine.subscribe_finished();
    let started_at = Instant::now();
    let id = engine
        .start_instance(&definition, None, input, "bench")
        .await?;
    // A fan-out of 100,000 items runs in minutes; a generous bound still ends a hung run.
    let deadline = started_at + Duration::from_secs(60 + items as u64 / 20);
    loop {
        let (done, status) = tokio::time::timeout_at(deadline.into(), finished.recv())
            .await
            .with_context(|| format!("W5: the fan-out over {items} items did not finish"))??;
        if done == id {
            if status != InstanceStatus::Completed {
                bail!("W5: instance {id} ended {status}");
            }
            break;
        }
    }
    let elapsed = started_at.elapsed();
    let after = engine.stats();
    let rate = items as f64 / elapsed.as_secs_f64();
    let commits = after.commits - before.commits;
    println!("  N = {items}");
    println!("    elapsed          {:.2} s", elapsed.as_secs_f64());
    println!("    items/s          {rate:.0}");
    println!(
        "    events/s         {:.0} ({} group commits, {:.1} events each)",
        (after.committed_events - before.committed_events) as f64 / elapsed.as_secs_f64(),
        commits,
        (after.committed_events - before.committed_events) as f64 / commits.max(1) as f64
    );
    let cycle_ms = (after.cycle_micros - before.cycle_micros) as f64 / 1000.0;
    let commit_ms = (after.commit_micros - before.commit_micros) as f64 / 1000.0;
    println!(
        "    driver busy      {cycle_ms:.0} ms, of which {commit_ms:.0} ms in store commits ({:.2} ms per commit)",
        commit_ms / commits.max(1) as f64
    );
    println!(
        "    snapshots        {} ({:.1} MB in all)",
        after.snapshots_written - before.snapshots_written,
        (after.snapshot_bytes - before.snapshot_bytes) as f64 / 1e6
    );
    print_memory("    ");
    Ok(rate)
}
