//! A cache of parsed definition versions, each with its compiled input validator.
//! Versions never change once stored, so entries never go stale.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use gridflow_core::validate::InputValidator;
use gridflow_core::{Definition, DefinitionId};
use gridflow_store::Store;

use crate::error::{Error, Result};

/// One loaded definition version.
pub(crate) struct Loaded {
    pub(crate) definition: Arc<Definition>,
    pub(crate) version: u32,
    pub(crate) input_validator: InputValidator,
}

/// Definition versions by `(id, version)`.
///
/// A std `RwLock`: held only to look up or insert, never across an `.await`.
pub(crate) struct DefinitionCache {
    store: Arc<dyn Store>,
    loaded: RwLock<HashMap<(DefinitionId, u32), Arc<Loaded>>>,
}

impl DefinitionCache {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            loaded: RwLock::new(HashMap::new()),
        }
    }

    /// A version, or the latest when `version` is `None` (always read from the store,
    /// since a deploy may have added one).
    pub(crate) async fn get(&self, id: &DefinitionId, version: Option<u32>) -> Result<Arc<Loaded>> {
        if let Some(version) = version
            && let Some(loaded) = self
                .loaded
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&(id.clone(), version))
        {
            return Ok(loaded.clone());
        }
        let record = self.store.definition(id, version).await?;
        if let Some(loaded) = self
            .loaded
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&(id.clone(), record.version))
        {
            return Ok(loaded.clone());
        }
        let definition: Definition =
            serde_json::from_value(record.definition.clone()).map_err(|error| {
                Error::Internal(format!(
                    "definition {id} version {}: stored definition does not decode: {error}",
                    record.version
                ))
            })?;
        let input_validator = InputValidator::new(&definition).map_err(|errors| {
            Error::Internal(format!(
                "definition {id} version {}: input schema does not compile: {}",
                record.version,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let loaded = Arc::new(Loaded {
            definition: Arc::new(definition),
            version: record.version,
            input_validator,
        });
        self.loaded
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((id.clone(), record.version), loaded.clone());
        Ok(loaded)
    }
}
