//! W6 correlation (issue 12): many instances wait on a wait step with a `correlate`, then
//! signals each matching one instance are delivered one at a time the way webhooks and
//! pollers deliver them (`Engine::signal_matching`), and the delivery latency is measured
//! (the signal found its instance, the instance took it and completed, durably).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use tokio::sync::Semaphore;

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_runtime::Engine;

use crate::{Args, millis, percentile, print_memory};

/// Starts `correlated_waiting` instances, each waiting for `partner.ack` of its own
/// partner, then delivers `signals` signals spread over them.
pub(crate) async fn w6_correlation(engine: &Engine, args: &Args) -> anyhow::Result<()> {
    engine
        .deploy(
            "id: bench-w6\nsteps:\n  - id: ack\n    wait: {signal: partner.ack, correlate: \"${event.partner_id == input.partner_id}\"}\n",
        )
        .await?;
    let definition = DefinitionId::from("bench-w6");
    let waiting = args.correlated_waiting;
    let before = engine.stats();
    let started_at = Instant::now();
    let permits = Arc::new(Semaphore::new(512));
    let mut tasks = tokio::task::JoinSet::new();
    let mut instances: Vec<(usize, InstanceId)> = Vec::with_capacity(waiting);
    for partner in 0..waiting {
        let permit = permits.clone().acquire_owned().await?;
        let engine = engine.clone();
        let definition = definition.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let input = json!({"partner_id": format!("p-{partner}")});
            let id = engine
                .start_instance(&definition, None, input, "bench")
                .await?;
            anyhow::Ok((partner, id))
        });
        while let Some(done) = tasks.try_join_next() {
            instances.push(done??);
        }
    }
    while let Some(done) = tasks.join_next().await {
        instances.push(done??);
    }
    // Each instance writes two events before it waits: started, and its wait scheduled.
    let expected_events = before.committed_events + 2 * waiting as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while engine.stats().committed_events < expected_events {
        if Instant::now() > deadline {
            bail!("W6: instances did not all reach their wait within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_waiting = started_at.elapsed();
    instances.sort_unstable_by_key(|(partner, _)| *partner);

    let signals = args.signals.min(waiting);
    let step = (waiting / signals.max(1)).max(1);
    let mut latencies = Vec::with_capacity(signals);
    for (partner, instance) in instances.iter().step_by(step).take(signals) {
        let payload = json!({"partner_id": format!("p-{partner}"), "status": "received"});
        let sent_at = Instant::now();
        let delivered = engine
            .signal_matching("partner.ack", &payload, "bench")
            .await?;
        latencies.push(sent_at.elapsed());
        if delivered != [instance.clone()] {
            bail!("W6: the signal of partner p-{partner} reached {delivered:?}, not {instance}");
        }
        let view = engine.instance(instance).await?;
        if view.status != InstanceStatus::Completed {
            bail!(
                "W6: instance {instance} is {} after its signal",
                view.status
            );
        }
    }
    latencies.sort();
    println!(
        "W6 correlation: {waiting} instances waiting on partner.ack with \
         correlate event.partner_id == input.partner_id; {signals} signals, one at a time"
    );
    println!(
        "  all waiting        {:.2} s ({:.0} starts/s)",
        all_waiting.as_secs_f64(),
        waiting as f64 / all_waiting.as_secs_f64()
    );
    println!(
        "  delivery           p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (signal_matching: found, taken, completed, durable)",
        millis(percentile(&latencies, 0.50)),
        millis(percentile(&latencies, 0.99)),
        millis(latencies.last().copied().unwrap_or_default())
    );
    print_memory("  ");
    Ok(())
}
