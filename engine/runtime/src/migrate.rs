//! Moving running instances to another version of their definition on the engine handle.
//!
//! A plan classifies every running or waiting instance of the older versions (or of
//! `from_version`): compatible, or incompatible with every reason the core gives
//! ([`gridflow_core::machine::migration_problems`]; the rules are in
//! `docs/design/migration.md`). Unless it is a dry run, each compatible instance is then
//! moved through the driver, which records `instance_migrated` with the actor; the core
//! checks again there, so an instance that changed meanwhile is reported incompatible
//! instead of moved.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use gridflow_core::machine::{InputBody, migration_problems};
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, StepId};
use gridflow_store::InstanceFilter;

use crate::engine::Engine;
use crate::error::{Detail, Error, Result};

/// What a migration asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrationRequest {
    /// The version to move to.
    pub to_version: u32,
    /// Only instances of this version; `None`: every version older than `to_version`.
    pub from_version: Option<u32>,
    /// Old step id to new step id, for renamed steps.
    pub mapping: BTreeMap<StepId, StepId>,
    /// Classify only; move nothing.
    pub dry_run: bool,
}

/// The answer: every instance considered, classified, and whether it moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationPlan {
    /// The definition.
    pub definition: DefinitionId,
    /// The version moved to.
    pub to_version: u32,
    /// The version moved from, when the request named one.
    pub from_version: Option<u32>,
    /// Whether nothing was moved.
    pub dry_run: bool,
    /// How many instances are compatible (moved, unless a dry run).
    pub compatible: usize,
    /// How many are not.
    pub incompatible: usize,
    /// How many moved.
    pub migrated: usize,
    /// Every running or waiting instance considered, oldest version first.
    pub instances: Vec<MigrationItem>,
}

/// One instance of a [`MigrationPlan`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationItem {
    /// The instance.
    pub instance_id: InstanceId,
    /// The version it ran on when it was classified.
    pub version: u32,
    /// Its status then (running or waiting).
    pub status: InstanceStatus,
    /// Whether it can move.
    pub compatible: bool,
    /// Why not (empty when compatible).
    pub reasons: Vec<String>,
    /// Whether it moved.
    pub migrated: bool,
}

/// How many instances one page of the scan reads.
const PAGE: u32 = 200;

impl Engine {
    /// Plans a migration of `definition`'s running and waiting instances, and applies it
    /// unless `request.dry_run`.
    pub async fn migrate(
        &self,
        definition: &DefinitionId,
        request: MigrationRequest,
        actor: &str,
    ) -> Result<MigrationPlan> {
        let definitions = &self.shared.definitions;
        let latest = definitions.get(definition, None).await?;
        let (to, sources) = self
            .migration_versions(definition, &request, latest.version)
            .await?;
        let mut instances = Vec::new();
        for status in [InstanceStatus::Running, InstanceStatus::Waiting] {
            let filter = InstanceFilter {
                status: Some(status),
                definition: Some(definition.clone()),
            };
            let mut cursor = None;
            loop {
                let page = self
                    .shared
                    .store
                    .list_instances(&filter, cursor.as_deref(), PAGE)
                    .await?;
                for record in page.items {
                    let Some(from) = sources.get(&record.definition_version) else {
                        continue;
                    };
                    let state = self.current_state(&record).await?;
                    let reasons =
                        migration_problems(&state, from, &to, request.to_version, &request.mapping);
                    instances.push(MigrationItem {
                        instance_id: record.id.clone(),
                        version: state.version,
                        status: state.status(),
                        compatible: reasons.is_empty(),
                        reasons,
                        migrated: false,
                    });
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        instances.sort_by(|a, b| (a.version, &a.instance_id).cmp(&(b.version, &b.instance_id)));
        if !request.dry_run {
            for item in instances.iter_mut().filter(|item| item.compatible) {
                let body = InputBody::Migrate {
                    to_version: request.to_version,
                    to: to.clone(),
                    mapping: request.mapping.clone(),
                };
                match self.operate(&item.instance_id, actor, body).await {
                    Ok(()) => item.migrated = true,
                    Err(Error::Conflict(message)) => {
                        item.compatible = false;
                        item.reasons = vec![message];
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        let compatible = instances.iter().filter(|item| item.compatible).count();
        Ok(MigrationPlan {
            definition: definition.clone(),
            to_version: request.to_version,
            from_version: request.from_version,
            dry_run: request.dry_run,
            compatible,
            incompatible: instances.len() - compatible,
            migrated: instances.iter().filter(|item| item.migrated).count(),
            instances,
        })
    }

    /// The target definition and the source versions, once the request's versions and
    /// mapping check out (422 with every problem otherwise).
    async fn migration_versions(
        &self,
        definition: &DefinitionId,
        request: &MigrationRequest,
        latest: u32,
    ) -> Result<(
        std::sync::Arc<gridflow_core::Definition>,
        BTreeMap<u32, std::sync::Arc<gridflow_core::Definition>>,
    )> {
        let definitions = &self.shared.definitions;
        let mut details = Vec::new();
        let known = 1..=latest;
        if !known.contains(&request.to_version) {
            details.push(detail(
                "to_version".to_owned(),
                format!("definition {definition} has versions 1 to {latest}"),
            ));
        }
        let source_versions: Vec<u32> = match request.from_version {
            Some(from) if !known.contains(&from) => {
                details.push(detail(
                    "from_version".to_owned(),
                    format!("definition {definition} has versions 1 to {latest}"),
                ));
                Vec::new()
            }
            Some(from) if from == request.to_version => {
                details.push(detail(
                    "from_version".to_owned(),
                    "from_version and to_version are the same".to_owned(),
                ));
                Vec::new()
            }
            Some(from) => vec![from],
            None => (1..request.to_version.min(latest + 1)).collect(),
        };
        if !details.is_empty() {
            return Err(invalid(definition, details));
        }
        let to = definitions
            .get(definition, Some(request.to_version))
            .await?
            .definition
            .clone();
        let mut sources = BTreeMap::new();
        let mut old_steps = BTreeSet::new();
        for version in source_versions {
            let loaded = definitions.get(definition, Some(version)).await?;
            old_steps.extend(loaded.definition.steps.iter().map(|step| step.id.clone()));
            sources.insert(version, loaded.definition.clone());
        }
        for (old, new) in &request.mapping {
            if !old_steps.contains(old) {
                details.push(detail(
                    format!("mapping.{old}"),
                    format!("no version migrated from has a step \"{old}\""),
                ));
            }
            if to.step(new).is_none() {
                details.push(detail(
                    format!("mapping.{old}"),
                    format!("version {} has no step \"{new}\"", request.to_version),
                ));
            }
        }
        if !details.is_empty() {
            return Err(invalid(definition, details));
        }
        Ok((to, sources))
    }
}

fn detail(path: String, message: String) -> Detail {
    Detail { path, message }
}

fn invalid(definition: &DefinitionId, details: Vec<Detail>) -> Error {
    let count = details.len();
    Error::Invalid {
        message: format!(
            "migration of definition {definition}: {count} problem{}",
            if count == 1 { "" } else { "s" }
        ),
        details,
    }
}
