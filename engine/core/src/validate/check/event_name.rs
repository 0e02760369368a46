//! Event and signal names of known sources: a trigger's `event:` or a wait's `signal:`
//! named `<source>.<name>`, where the catalog knows `source` (a registered connector),
//! must be an event that source emits; otherwise the error names the closest one ("did
//! you mean") or lists what the source emits. Names of other sources
//! (`partner_acknowledged`, `partner.replied`) are free: signals sent through the API
//! and webhooks of sources without a connector may carry any name.

use super::super::path::Path;
use super::super::suggest::suggest;
use super::Checker;

/// How many event names an error lists when none is close.
const LISTED: usize = 12;

impl Checker<'_> {
    /// Checks `name` (a trigger event or a wait signal) against the events of its source.
    pub(super) fn check_event_name(&mut self, name: &str, at: &Path, what: &str) {
        let Some((source, event)) = name.split_once('.') else {
            return;
        };
        let Some(emitted) = self.catalog.source_events(source) else {
            return;
        };
        if emitted.iter().any(|known| known == event) {
            return;
        }
        // Compared without the source, which both share: a short event name's typo
        // counts against its own length, not against the prefix's.
        let events: Vec<&str> = emitted.iter().map(String::as_str).collect();
        let full: Vec<String> = events
            .iter()
            .map(|known| format!("{source}.{known}"))
            .collect();
        let candidates: Vec<&str> = full.iter().map(String::as_str).collect();
        let hint = match suggest(event, &events) {
            Some(close) => format!(" (did you mean {:?}?)", format!("{source}.{close}")),
            None if candidates.is_empty() => format!(" ({source} emits no events)"),
            None => {
                let mut listed = candidates.iter().take(LISTED).copied().collect::<Vec<_>>();
                if candidates.len() > LISTED {
                    listed.push("…");
                }
                format!(" ({source} emits {})", listed.join(", "))
            }
        };
        self.errors.push(
            at,
            format!("unknown {what} {name:?}: {source} does not emit it{hint}"),
        );
    }
}
