//! The definition versions a history folds with: the one an instance started on and
//! every one it migrated to (`instance_migrated`), loaded through the definition cache.
//! Every replay in the runtime (reads of the current state, `replay`, `replay_diff`) goes
//! through here, so that a migrated instance replays across the switch.

use std::collections::BTreeMap;
use std::sync::Arc;

use gridflow_core::{Definition, DefinitionId, RecordedEvent};

use crate::definition_cache::DefinitionCache;
use crate::error::Result;

/// Definitions by version; [`gridflow_core::replay::Definitions`] reads it.
pub(crate) type Versions = BTreeMap<u32, Arc<Definition>>;

/// The versions that folding `events` needs, with `current` (the version the instance
/// runs on now, or the one its snapshot was taken on) and any `also`.
pub(crate) async fn for_events(
    definitions: &DefinitionCache,
    id: &DefinitionId,
    events: &[RecordedEvent],
    current: u32,
    also: Option<u32>,
) -> Result<Versions> {
    let mut needed = gridflow_core::replay::versions(events);
    needed.push(current);
    needed.extend(also);
    needed.sort_unstable();
    needed.dedup();
    let mut versions = Versions::new();
    for version in needed {
        let loaded = definitions.get(id, Some(version)).await?;
        versions.insert(version, loaded.definition.clone());
    }
    Ok(versions)
}
