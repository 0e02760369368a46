//! Definitions on the engine handle: validated, deployed as versions, and read back.
//!
//! Validation runs on tokio's blocking threads; the parsed versions the driver and the
//! starts need are cached separately (`definition_cache`).

use serde::Serialize;
use serde_json::Value;

use gridflow_core::validate;
use gridflow_core::{Definition, DefinitionId};
use gridflow_store::Deployed;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::view::DefinitionView;

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// Definition id.
    pub id: String,
    /// The version now current.
    pub version: u32,
    /// Whether a new version was stored (false: identical content was deployed before).
    pub created: bool,
}

impl Engine {
    /// Validates a definition without deploying it, refusing one with more steps than
    /// `limits.max_steps`.
    ///
    /// Validation takes time linear in the definition's size, up to about a second for the
    /// largest: it runs on tokio's blocking threads, so that it never holds an async
    /// worker (and `/healthz` with it).
    pub async fn validate(&self, source: &str) -> Result<Definition> {
        let definition = self.prepare(source).await?.0;
        self.check_children(&definition).await?;
        Ok(definition)
    }

    /// Workflow steps checked against the deployed definitions they start.
    async fn check_children(&self, definition: &Definition) -> Result<()> {
        let errors = crate::children::check_definition(&self.shared, definition).await?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.into())
        }
    }

    /// The validated definition, its content hash and its JSON, computed on a blocking
    /// thread.
    async fn prepare(&self, source: &str) -> Result<(Definition, String, Value)> {
        let registry = self.shared.registry.clone();
        let max_steps = self.shared.limits.max_steps;
        let source = source.to_owned();
        tokio::task::spawn_blocking(move || {
            let definition = validate::load_within(&source, registry.as_ref(), max_steps)?;
            let content_hash = validate::content_hash(&definition);
            let json = serde_json::to_value(&definition).map_err(|error| {
                Error::Internal(format!("definition does not serialize: {error}"))
            })?;
            Ok((definition, content_hash, json))
        })
        .await
        .map_err(|error| Error::Internal(format!("definition validation stopped: {error}")))?
    }

    /// Deploys a definition: a new version when its content changed.
    pub async fn deploy(&self, source: &str) -> Result<Deployment> {
        let (definition, content_hash, json) = self.prepare(source).await?;
        self.check_children(&definition).await?;
        let deployed = self
            .shared
            .store
            .deploy(
                &definition.id,
                &content_hash,
                source,
                &json,
                self.shared.clock.now(),
            )
            .await?;
        let (version, created) = match deployed {
            Deployed::Created(version) => (version, true),
            Deployed::Unchanged(version) => (version, false),
        };
        tracing::info!(definition = %definition.id, version, created, "definition deployed");
        if created
            && definition
                .triggers
                .iter()
                .any(|trigger| trigger.rights.is_some())
        {
            self.shared.rights.wake();
        }
        Ok(Deployment {
            id: definition.id.to_string(),
            version,
            created,
        })
    }

    /// One version of a definition, the latest when `version` is `None`.
    pub async fn definition(
        &self,
        id: &DefinitionId,
        version: Option<u32>,
    ) -> Result<DefinitionView> {
        Ok(DefinitionView::from(
            &self.shared.store.definition(id, version).await?,
        ))
    }

    /// The latest version of every definition.
    pub async fn list_definitions(&self) -> Result<Vec<DefinitionView>> {
        Ok(self
            .shared
            .store
            .list_definitions()
            .await?
            .iter()
            .map(DefinitionView::from)
            .collect())
    }

    /// Every version of a definition, oldest first.
    pub async fn definition_versions(&self, id: &DefinitionId) -> Result<Vec<DefinitionView>> {
        Ok(self
            .shared
            .store
            .definition_versions(id)
            .await?
            .iter()
            .map(DefinitionView::from)
            .collect())
    }
}
