//! Waiting for something with a deadline, by polling, instead of sleeping and hoping.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::bail;

use gridflow_core::{InstanceId, InstanceStatus};
use gridflow_runtime::Engine;

/// Polls `condition` until it yields `Some`, or fails after `timeout`.
pub async fn wait_until<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut condition: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits up to 30 s until instance `id` of `engine` has status `wanted`.
pub async fn wait_for_status(
    engine: &Engine,
    id: &InstanceId,
    wanted: InstanceStatus,
) -> anyhow::Result<()> {
    wait_until(
        Duration::from_secs(30),
        &format!("instance {id} to be {wanted}"),
        || async { Ok((engine.instance(id).await?.status == wanted).then_some(())) },
    )
    .await
}
