//! Replay checks: an instance's recorded history, folded again, must give its stored state.

use anyhow::ensure;

use gridflow_core::InstanceId;
use gridflow_runtime::Engine;

/// Replay of the whole stored history of `id` must equal its stored state.
pub async fn assert_replay_matches(engine: &Engine, id: &InstanceId) -> anyhow::Result<()> {
    let replayed = engine.replay(id, None).await?;
    ensure!(
        replayed.matches_stored == Some(true),
        "instance {id}: replayed state differs from the stored state"
    );
    Ok(())
}
