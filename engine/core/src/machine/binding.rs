//! Approvals bound to artifacts: an approval step's `bind` rendered when the approval is
//! requested (per item on a fan-out), and the instance's approved artifacts handed to the
//! runtime with every dispatch, which checks an action that delivers content against them
//! before it reaches a partner (`artifact_not_approved`).
//!
//! The binding is recorded in `approval_requested` and kept in the approval's state; the
//! decision (`approval_decided`) and the step's output (its outcome) record it again. The
//! approved set is derived from the approvals in the state ([`crate::artifact::approved`]),
//! so replay folds the same one.
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `binding.request` | an approval (or item) requested with `bind` | derived | `approval_requested` with the rendered `artifacts` |
//! | `binding.invalid` | the same, `bind` fails or does not render to artifacts | derived | `step_failed` (code `invalid_binding`, naming the path) |
//! | `binding.dispatch` | any event that dispatches, in a definition with a `bind` | any event | each `Dispatch` carries the approved artifacts |

use serde_json::Value;

use crate::artifact::{self, Artifact};
use crate::command::Command;
use crate::definition::Approval;
use crate::expr::{self, Budget};
use crate::state::InstanceState;

use super::Fold;
use super::coverage::took;
use super::expressions::{Reads, scope_for};

/// The artifacts `approval.bind` names, rendered with the item (and `index`) of a fan-out
/// item in scope; `None` without `bind`; the code `invalid_binding` and a message naming
/// the path when it does not render to artifacts.
pub(super) fn render(
    state: &InstanceState,
    approval: &Approval,
    item: Option<(u32, &Value)>,
    budget: Budget,
) -> Result<Option<Vec<Artifact>>, (&'static str, String)> {
    let Some(bind) = &approval.bind else {
        return Ok(None);
    };
    let template = Value::String(bind.clone());
    let scope = scope_for(state, Reads::Template(&template), item, None);
    let invalid = |message: String| {
        took("binding.invalid");
        ("invalid_binding", message)
    };
    let rendered = expr::render(&template, &scope.within(budget))
        .map_err(|message| invalid(format!("approval.bind: {message}")))?;
    let artifacts = Artifact::read_binding(&rendered)
        .map_err(|message| invalid(format!("approval.bind{message}")))?;
    took("binding.request");
    Ok(Some(artifacts))
}

/// After every event: in a definition that binds artifacts, each dispatch the event
/// caused carries the instance's approved artifacts.
pub(super) fn after_event(fold: &mut Fold) {
    let dispatches = fold
        .commands
        .iter()
        .any(|command| matches!(command, Command::Dispatch(_)));
    if !dispatches || !fold.definition.binds_artifacts() {
        return;
    }
    took("binding.dispatch");
    let approved = artifact::approved(fold.state);
    for command in &mut fold.commands {
        match command {
            Command::Dispatch(dispatch) => dispatch.approved = Some(approved.clone()),
            Command::AbandonWork { .. }
            | Command::StartTimer { .. }
            | Command::CancelTimer { .. }
            | Command::Finish { .. }
            | Command::StartChild(_)
            | Command::CancelChild { .. } => {}
        }
    }
}
