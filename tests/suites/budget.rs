//! Bounded cost of expressions and definitions through the engine handle (issue 10,
//! item 4): hostile start inputs are refused by `limits.cel_budget` while other starts on
//! the same engine keep answering fast, and `limits.max_steps` refuses a huge definition
//! at deploy, off the async threads.

// The figures go to the report (run with --nocapture to see them).
#![allow(clippy::print_stdout)]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use gridflow_core::limits::Limits;
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, StepStatus};
use gridflow_runtime::{Engine, Error};
use gridflow_tests::{engine_with_limits, on_every_database, wait_for_status};

/// Three nested `all` over the input's list: 27 million iterations for 300 items, which
/// held the driver for 14 s before the budget.
const NESTED_ALL: &str = r#"
id: nested-all
steps:
  - id: check
    action: core.echo
    with: {ok: "${input.l.all(x, input.l.all(y, input.l.all(z, x + y + z >= 0)))}"}
"#;

/// Three nested `map` over the input's list: 8 million triples for 200 items, which took
/// 1.84 GB and wrote a 55 MB history before the budget.
const NESTED_MAP: &str = r#"
id: nested-map
steps:
  - id: expand
    action: core.echo
    with: {triples: "${input.l.map(x, input.l.map(y, input.l.map(z, [x, y, z])))}"}
"#;

const QUICK: &str = "id: quick\nsteps:\n  - id: hello\n    action: core.noop\n";

/// The cases measure latencies: they run one at a time, so that none measures another's
/// load.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn numbers(count: i64) -> Value {
    Value::Array((0..count).map(Value::from).collect())
}

/// The slowest of ten starts of `quick`, one after the other.
async fn slowest_of_ten_starts(engine: &Engine) -> anyhow::Result<Duration> {
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let at = Instant::now();
        engine
            .start_instance(&DefinitionId::from("quick"), None, json!({}), "alice")
            .await?;
        slowest = slowest.max(at.elapsed());
    }
    Ok(slowest)
}

/// How long a start may take while something else runs: 100 ms, or twice as long as the
/// slowest start with nothing else running when the machine is too loaded for that (the
/// bound still tells a held driver, which made starts wait 14 s, from a free one).
fn answer_bound(baseline: Duration) -> Duration {
    Duration::from_millis(100).max(baseline * 2)
}

async fn failed_step_message(
    engine: &Engine,
    id: &InstanceId,
    step: &str,
) -> anyhow::Result<String> {
    wait_for_status(engine, id, InstanceStatus::Failed).await?;
    let view = engine.instance(id).await?;
    let step_view = view.steps.get(step).context("no such step")?;
    ensure!(step_view.status == StepStatus::Failed, "{step_view:?}");
    let error = step_view.error.as_ref().context("failed without error")?;
    ensure!(!error.retryable && error.code == "expression", "{error:?}");
    ensure!(
        step_view.attempts <= 1,
        "a budget refusal is not retried: {step_view:?}"
    );
    Ok(error.message.clone())
}

async fn hostile_inputs_are_refused_while_other_starts_answer(url: &str) -> anyhow::Result<()> {
    let engine = engine_with_limits(url, Limits::default()).await?;
    for source in [NESTED_ALL, NESTED_MAP, QUICK] {
        engine.deploy(source).await?;
    }
    // Warm up: the first start loads the definitions.
    for definition in ["quick", "nested-all", "nested-map"] {
        engine
            .start_instance(
                &DefinitionId::from(definition),
                None,
                json!({"l": []}),
                "alice",
            )
            .await?;
    }
    let hostile = [
        ("nested-all", numbers(300), "check"),
        ("nested-map", numbers(200), "expand"),
    ];
    let mut started = Vec::new();
    for (definition, list, _) in &hostile {
        let engine = engine.clone();
        let definition = DefinitionId::from(*definition);
        let input = json!({ "l": list });
        started.push(tokio::spawn(async move {
            let at = Instant::now();
            let id = engine
                .start_instance(&definition, None, input, "mallory")
                .await;
            (id, at.elapsed())
        }));
    }
    // Concurrent starts of an ordinary definition on the same engine.
    let baseline = slowest_of_ten_starts(&engine).await?;
    let mut took = Vec::with_capacity(10);
    for _ in 0..10 {
        let at = Instant::now();
        engine
            .start_instance(&DefinitionId::from("quick"), None, json!({}), "alice")
            .await?;
        took.push(at.elapsed());
    }
    took.sort();
    let (ninth, slowest) = (took[8], took[9]);
    println!(
        "ordinary starts beside the hostile ones: 9 of 10 within {ninth:?}, slowest {slowest:?} (alone before: {baseline:?})"
    );
    // Nine of ten within the bound, and none near the 14 s a held driver made them wait:
    // one start may meet a stall of the shared machine (a PostgreSQL fsync under CI's load
    // once took one start to 106 ms while the hostile ones had long been refused).
    ensure!(
        ninth < answer_bound(baseline),
        "ordinary starts took up to {ninth:?} beside the hostile ones (alone: {baseline:?})"
    );
    ensure!(
        slowest < Duration::from_secs(1),
        "an ordinary start took {slowest:?} beside the hostile ones (alone: {baseline:?})"
    );
    for (task, (definition, _, step)) in started.into_iter().zip(hostile) {
        let (id, elapsed) = task.await?;
        let id = id?;
        let message = failed_step_message(&engine, &id, step).await?;
        println!("{definition}: start answered in {elapsed:?}; step {step} failed: {message}");
        ensure!(
            elapsed < Duration::from_millis(500),
            "{definition} took {elapsed:?}"
        );
        ensure!(
            message.starts_with("with: expression \"input.l.")
                && message.contains("exceeds the work budget")
                && message.contains("more than limits.cel_budget (1000000)"),
            "{message}"
        );
        let history = engine.history(&id).await?;
        let bytes: usize = history
            .iter()
            .map(|event| serde_json::to_string(event).map_or(0, |text| text.len()))
            .sum();
        println!(
            "{definition}: history of {} events, {bytes} bytes",
            history.len()
        );
        ensure!(bytes < 64 * 1024, "history of {bytes} bytes");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_expressions_are_refused_by_the_budget_while_other_starts_answer() {
    let _serial = SERIAL.lock().await;
    on_every_database(|url| async move {
        hostile_inputs_are_refused_while_other_starts_answer(&url).await
    })
    .await
    .unwrap();
}

async fn raised_budget_lets_a_larger_expression_run(url: &str) -> anyhow::Result<()> {
    let limits = Limits {
        cel_budget: std::num::NonZeroU64::new(200_000_000).context("not zero")?,
        ..Limits::default()
    };
    let engine = engine_with_limits(url, limits).await?;
    engine.deploy(NESTED_ALL).await?;
    // 40 items: 64,000 iterations, over a tight budget's reach but inside this one.
    let id = engine
        .start_instance(
            &DefinitionId::from("nested-all"),
            None,
            json!({"l": numbers(40)}),
            "alice",
        )
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    let tight = Limits {
        cel_budget: std::num::NonZeroU64::new(10_000).context("not zero")?,
        ..Limits::default()
    };
    let engine = engine_with_limits(url, tight).await?;
    let id = engine
        .start_instance(
            &DefinitionId::from("nested-all"),
            None,
            json!({"l": numbers(40)}),
            "alice",
        )
        .await?;
    let message = failed_step_message(&engine, &id, "check").await?;
    ensure!(message.contains("limits.cel_budget (10000)"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_budget_decides() {
    let _serial = SERIAL.lock().await;
    on_every_database(|url| async move { raised_budget_lets_a_larger_expression_run(&url).await })
        .await
        .unwrap();
}

fn chain(steps: usize) -> String {
    let mut source = String::from("id: long-chain\nsteps:\n  - id: s0\n    action: core.noop\n");
    for index in 1..steps {
        source.push_str(&format!(
            "  - id: s{index}\n    needs: [s{}]\n    action: core.echo\n    with: {{a: \"${{steps.s{}.output}}\"}}\n",
            index - 1,
            index - 1
        ));
    }
    source
}

async fn max_steps_is_enforced_at_deploy(url: &str) -> anyhow::Result<()> {
    let engine = engine_with_limits(url, Limits::default()).await?;
    let source = chain(5_000);
    let at = Instant::now();
    match engine.deploy(&source).await {
        Err(Error::Invalid { message, details }) => {
            println!(
                "5,000 steps refused at deploy in {:?}: {message}",
                at.elapsed()
            );
            ensure!(
                details.iter().any(|detail| detail.path == "steps"
                    && detail.message.starts_with(
                        "the definition has 5000 steps, more than limits.max_steps (1000)"
                    )),
                "{details:?}"
            );
        }
        other => bail!("a 5,000-step definition was not refused: {other:?}"),
    }
    // Raised, the same definition validates, while the async threads keep answering, and
    // deploys.
    let limits = Limits {
        max_steps: NonZeroU32::new(5_000).context("not zero")?,
        ..Limits::default()
    };
    let engine = engine_with_limits(url, limits).await?;
    engine.deploy(QUICK).await?;
    let quick = DefinitionId::from("quick");
    let baseline = slowest_of_ten_starts(&engine).await?;
    let deploying = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let at = Instant::now();
            engine
                .validate(&source)
                .await
                .map(|_| (at.elapsed(), source))
        })
    };
    let mut answers = Vec::new();
    while !deploying.is_finished() {
        let at = Instant::now();
        engine
            .start_instance(&quick, None, json!({}), "alice")
            .await?;
        answers.push(at.elapsed());
        tokio::task::yield_now().await;
    }
    let (elapsed, source) = deploying.await??;
    ensure!(engine.deploy(&source).await?.created);
    // Validation on the async threads would stall every start for its whole duration; on
    // a blocking thread it only competes for the 2 cores with the database, so a single
    // start may be slow when the scheduler is unlucky, but most answer at once.
    answers.sort();
    let ninetieth = answers
        .get(answers.len() * 9 / 10)
        .copied()
        .unwrap_or(Duration::ZERO);
    let slowest = answers.last().copied().unwrap_or(Duration::ZERO);
    println!(
        "5,000 steps validated in {elapsed:?}; {} starts meanwhile, 90th percentile {ninetieth:?}, slowest {slowest:?} (alone before: {baseline:?})",
        answers.len()
    );
    ensure!(
        answers.len() >= 5,
        "only {} starts answered during a validation of {elapsed:?}",
        answers.len()
    );
    ensure!(
        ninetieth < answer_bound(baseline),
        "starts took {ninetieth:?} (90th percentile) during the validation (alone: {baseline:?})"
    );
    ensure!(
        slowest < elapsed / 2,
        "a start waited {slowest:?}, as long as the validation ({elapsed:?}) itself"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_over_max_steps_is_refused_and_validation_does_not_hold_the_async_threads() {
    let _serial = SERIAL.lock().await;
    on_every_database(|url| async move { max_steps_is_enforced_at_deploy(&url).await })
        .await
        .unwrap();
}
