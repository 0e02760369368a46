//! The distribution ledger in `audit verify` and `audit export`.
//!
//! Verify checks every delivery's chain and row (`gridflow_core::audit::ledger`), then,
//! for every instance whose definition has a step declaring ledger changes (or that has
//! ledger rows), compares the `delivered` changes in its hash-chained history's step
//! outputs with its rows: a row no output made, or an output's delivery with no row, is
//! reported. The rows are read whole (a delivery row is small); entries a page at a time.
//!
//! Export writes each delivery and its entries after the instances.

use std::collections::{BTreeMap, HashSet};

use gridflow_core::audit::ledger::{
    Delivery, Entry, check_delivery, check_instance_deliveries, deliveries_in_history,
};
use gridflow_core::audit::{ExportLine, LineWriter, Problem, ProblemKind, Report};
use gridflow_core::{Definition, InstanceId};
use gridflow_store::{AuditFilter, Store};

use super::declares_ledger;
use crate::engine::Engine;
use crate::error::Result;

/// Rows or entries per read.
const PAGE: u32 = 5_000;

async fn all_deliveries(store: &dyn Store) -> Result<Vec<Delivery>> {
    let mut rows = Vec::new();
    loop {
        let after = rows.last().map(|row: &Delivery| row.delivery_id.clone());
        let page = store.deliveries_after(after.as_deref(), PAGE).await?;
        let done = page.len() < PAGE as usize;
        rows.extend(page);
        if done {
            return Ok(rows);
        }
    }
}

/// Calls `each` with every delivery's entries (by delivery id, in seq order).
async fn for_each_chain(store: &dyn Store, mut each: impl FnMut(&str, Vec<Entry>)) -> Result<()> {
    let mut after: Option<(String, u64)> = None;
    let mut group: Vec<Entry> = Vec::new();
    loop {
        let page = store
            .entries_after(after.as_ref().map(|(id, seq)| (id.as_str(), *seq)), PAGE)
            .await?;
        let done = page.len() < PAGE as usize;
        after = page
            .last()
            .map(|entry| (entry.delivery_id.clone(), entry.seq));
        for entry in page {
            if group
                .first()
                .is_some_and(|first| first.delivery_id != entry.delivery_id)
            {
                let id = group[0].delivery_id.clone();
                each(&id, std::mem::take(&mut group));
            }
            group.push(entry);
        }
        if done {
            break;
        }
    }
    if let Some(first) = group.first() {
        let id = first.delivery_id.clone();
        each(&id, group);
    }
    Ok(())
}

/// Whether step `step` of `definition` runs an action (or compensation) that declares
/// ledger changes.
fn ledger_step(
    registry: &gridflow_connectors::Registry,
    definition: &Definition,
    step: &str,
) -> bool {
    definition.step(&step.into()).is_some_and(|step| {
        step.action
            .as_deref()
            .is_some_and(|action| declares_ledger(registry, action))
            || step
                .compensate
                .as_ref()
                .is_some_and(|compensate| declares_ledger(registry, &compensate.action))
    })
}

impl Engine {
    /// Adds the ledger's problems to `report` (and recomputes `ok`).
    pub(crate) async fn verify_ledger(&self, mut report: Report) -> Result<Report> {
        let shared = self.shared();
        let store = shared.store.as_ref();
        let rows = all_deliveries(store).await?;
        let mut by_id: BTreeMap<&str, &Delivery> = rows
            .iter()
            .map(|row| (row.delivery_id.as_str(), row))
            .collect();
        let mut problems = Vec::new();
        for_each_chain(store, |id, entries| {
            let row = by_id.remove(id);
            problems.extend(check_delivery(row, id, &entries));
        })
        .await?;
        for (id, row) in by_id {
            problems.extend(check_delivery(Some(row), id, &[]));
        }
        let mut by_instance: BTreeMap<&InstanceId, Vec<&Delivery>> = BTreeMap::new();
        for row in &rows {
            if let Some(instance) = &row.facts.instance_id {
                by_instance.entry(instance).or_default().push(row);
            }
        }
        let heads = store.instance_heads(&AuditFilter::default()).await?;
        let mut seen = HashSet::new();
        for head in heads {
            let instance = head.head.instance_id;
            let instance_rows = by_instance.get(&instance).cloned().unwrap_or_default();
            seen.insert(instance.clone());
            let loaded = match shared
                .definitions
                .get(&head.definition_id, Some(head.definition_version))
                .await
            {
                Ok(loaded) => loaded,
                // A history whose definition is not stored (written by other means than
                // a deploy) declares no ledger steps; rows naming it are still reported.
                Err(crate::error::Error::NotFound(what)) => {
                    problems.extend(instance_rows.iter().map(|row| {
                        Problem::new(
                            ProblemKind::Ledger,
                            format!(
                                "delivery {}: the definition of its instance is missing ({what})",
                                row.delivery_id
                            ),
                        )
                        .instance(&instance)
                    }));
                    continue;
                }
                Err(error) => return Err(error),
            };
            let definition = &loaded.definition;
            let declares = definition
                .steps
                .iter()
                .any(|step| ledger_step(&shared.registry, definition, step.id.as_str()));
            if !declares && instance_rows.is_empty() {
                continue;
            }
            let history = store.history(&instance).await?;
            let in_history = deliveries_in_history(&instance, &history, |step| {
                ledger_step(&shared.registry, definition, step)
            });
            problems.extend(check_instance_deliveries(
                &instance,
                &in_history,
                &instance_rows,
            ));
        }
        for (instance, instance_rows) in by_instance {
            if seen.contains(instance) {
                continue;
            }
            for row in instance_rows {
                problems.push(
                    Problem::new(
                        ProblemKind::Ledger,
                        format!(
                            "delivery {}: its instance does not exist (row forged, or instance deleted)",
                            row.delivery_id
                        ),
                    )
                    .instance(instance),
                );
            }
        }
        if !problems.is_empty() {
            tracing::warn!(
                problems = problems.len(),
                "the distribution ledger does not verify"
            );
        }
        report.problems.extend(problems);
        report.ok = report.problems.is_empty();
        Ok(report)
    }

    /// Writes the ledger lines of an export: every delivery when `filter` is empty, else
    /// those of the `exported` instances, each followed by its entries. Returns false when
    /// the receiver went away.
    pub(crate) async fn export_ledger<Send, Sent>(
        &self,
        filter: &AuditFilter,
        exported: &HashSet<InstanceId>,
        writer: &mut LineWriter,
        send: Send,
    ) -> Result<bool>
    where
        Send: Fn(String) -> Sent,
        Sent: Future<Output = bool>,
    {
        let store = self.shared().store.as_ref();
        let mut after: Option<String> = None;
        loop {
            let page = store.deliveries_after(after.as_deref(), PAGE).await?;
            let done = page.len() < PAGE as usize;
            after = page.last().map(|row| row.delivery_id.clone());
            for listed in page {
                let wanted = filter.is_empty()
                    || listed
                        .facts
                        .instance_id
                        .as_ref()
                        .is_some_and(|instance| exported.contains(instance));
                if !wanted {
                    continue;
                }
                // The row read again with its entries, so that both are of one moment.
                let (row, entries) = store.delivery(&listed.delivery_id).await?;
                if !send(writer.write(&ExportLine::Delivery(row))).await {
                    return Ok(false);
                }
                for entry in entries {
                    if !send(writer.write(&ExportLine::LedgerEntry(entry))).await {
                        return Ok(false);
                    }
                }
            }
            if done {
                return Ok(true);
            }
        }
    }
}
