//! One command of a transition turned into rows of the cycle's batch (work items, timers,
//! finished instances) and into work for after the commit (dispatches, children).

use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_core::InstanceId;
use gridflow_core::command::Command;
use gridflow_store::{TimerRecord, WorkItem};

use super::{Cycle, children};

/// Turns one command into rows of the batch and work for after the commit.
pub(super) fn apply_command(
    instance: &InstanceId,
    command: Command,
    at: DateTime<Utc>,
    cycle: &mut Cycle,
    next_timer_at: &mut Option<DateTime<Utc>>,
) {
    match command {
        Command::Dispatch(dispatch) => {
            let payload = serde_json::to_value(&dispatch).unwrap_or(Value::Null);
            cycle.batch.work_added.push(WorkItem {
                id: dispatch.idempotency_key.clone(),
                instance_id: instance.clone(),
                payload,
                created_at: at,
            });
            cycle.dispatches.push((instance.clone(), dispatch));
        }
        Command::AbandonWork { work } => {
            let id = work.idempotency_key(instance);
            let queued_now = cycle.batch.work_added.len();
            cycle.batch.work_added.retain(|item| item.id != id);
            if cycle.batch.work_added.len() == queued_now {
                cycle.batch.work_done.push(id);
            } else {
                cycle
                    .dispatches
                    .retain(|(_, dispatch)| dispatch.idempotency_key != id);
            }
        }
        Command::StartTimer { timer, fire_at } => {
            let payload = serde_json::to_value(&timer).unwrap_or(Value::Null);
            cycle.batch.timers_added.push(TimerRecord {
                instance_id: instance.clone(),
                key: timer.to_key_string(),
                fire_at,
                payload,
            });
            if next_timer_at.is_none_or(|next| fire_at < next) {
                *next_timer_at = Some(fire_at);
            }
        }
        Command::CancelTimer { timer } => {
            let key = timer.to_key_string();
            let added_now = cycle.batch.timers_added.len();
            cycle
                .batch
                .timers_added
                .retain(|added| !(added.instance_id == *instance && added.key == key));
            if cycle.batch.timers_added.len() == added_now {
                cycle.batch.timers_removed.push((instance.clone(), key));
            }
        }
        Command::Finish { status } => cycle.finished.push((instance.clone(), status)),
        Command::StartChild(_) | Command::CancelChild { .. } => {
            children::queue(instance, command, at, cycle);
        }
    }
}
