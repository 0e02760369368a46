//! The normalised view of an asset's approval and usage rights, shared by every DAM
//! connector: each system models them differently (iconik approvals, Canto
//! `approvalStatus`, OTMM metadata fields, Smint.io licence terms), and workflows see one
//! [`ApprovalState`] and one [`RightsWindow`].
//!
//! A value the system does not give is unknown: it is never read as approved or unlimited.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Whether an asset may be used, as the source system says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Approved for use.
    Approved,
    /// Waiting for a decision.
    Pending,
    /// Refused.
    Rejected,
    /// Approved with restrictions (some usages, regions or channels only).
    Restricted,
    /// The system says nothing we can read: treat as not approved.
    Unknown,
}

impl ApprovalState {
    /// Only [`ApprovalState::Approved`] allows unrestricted use.
    pub fn is_approved(self) -> bool {
        self == Self::Approved
    }

    /// The JSON Schema of the value in action outputs.
    pub fn schema() -> Value {
        json!({"type": "string", "enum": ["approved", "pending", "rejected", "restricted", "unknown"]})
    }
}

/// When an asset may be used. A missing bound is unknown, not open-ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightsWindow {
    /// The first instant of use, when known.
    pub valid_from: Option<DateTime<Utc>>,
    /// The last instant of use, when known.
    pub valid_until: Option<DateTime<Utc>>,
}

/// Where an instant falls in a [`RightsWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RightsStatus {
    /// Both bounds are known and the instant lies between them.
    Valid,
    /// The window has not begun.
    NotYetValid,
    /// The window has ended.
    Expired,
    /// A bound that would decide is missing.
    Unknown,
}

impl RightsWindow {
    /// A window with the given bounds.
    pub fn new(valid_from: Option<DateTime<Utc>>, valid_until: Option<DateTime<Utc>>) -> Self {
        Self {
            valid_from,
            valid_until,
        }
    }

    /// Where `at` falls: a known bound that excludes it wins; otherwise the window is valid
    /// only when both bounds are known.
    pub fn status_at(&self, at: DateTime<Utc>) -> RightsStatus {
        if self.valid_until.is_some_and(|until| at > until) {
            return RightsStatus::Expired;
        }
        if self.valid_from.is_some_and(|from| at < from) {
            return RightsStatus::NotYetValid;
        }
        match (self.valid_from, self.valid_until) {
            (Some(_), Some(_)) => RightsStatus::Valid,
            _ => RightsStatus::Unknown,
        }
    }

    /// The JSON Schema of the value in action outputs.
    pub fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["valid_from", "valid_until"],
            "properties": {
                "valid_from": {"type": ["string", "null"], "format": "date-time"},
                "valid_until": {"type": ["string", "null"], "format": "date-time"}
            },
            "additionalProperties": false
        })
    }
}

/// Reads a date or instant as systems write them: RFC 3339 (`2026-01-31T00:00:00Z`), or a
/// calendar date (`2026-01-31`, read as the start of that day in UTC, or as its last
/// microsecond when `end_of_day`). Anything else is `None`: unknown, never a guess.
pub fn parse_instant(text: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let time = if end_of_day {
        date.and_hms_micro_opt(23, 59, 59, 999_999)?
    } else {
        date.and_hms_opt(0, 0, 0)?
    };
    Some(time.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_instant(text, false).unwrap()
    }

    #[test]
    fn missing_bounds_are_unknown_never_valid() {
        let now = at("2026-11-22");
        let cases = [
            (None, None, RightsStatus::Unknown),
            (Some("2026-01-01"), None, RightsStatus::Unknown),
            (None, Some("2027-01-01"), RightsStatus::Unknown),
            (None, Some("2025-01-01"), RightsStatus::Expired),
            (Some("2027-01-01"), None, RightsStatus::NotYetValid),
            (Some("2026-01-01"), Some("2027-01-01"), RightsStatus::Valid),
            (
                Some("2024-01-01"),
                Some("2025-12-31"),
                RightsStatus::Expired,
            ),
        ];
        for (from, until, expected) in cases {
            let window = RightsWindow::new(from.map(at), until.map(at));
            assert_eq!(window.status_at(now), expected, "{from:?}..{until:?}");
        }
    }

    #[test]
    fn dates_and_instants_parse_and_garbage_is_unknown() {
        assert_eq!(
            parse_instant("2026-01-31", true).unwrap().to_rfc3339(),
            "2026-01-31T23:59:59.999999+00:00"
        );
        assert_eq!(
            parse_instant("2026-01-31T10:00:00+01:00", false)
                .unwrap()
                .to_rfc3339(),
            "2026-01-31T09:00:00+00:00"
        );
        assert_eq!(parse_instant("next year", false), None);
        assert_eq!(parse_instant("", false), None);
    }

    #[test]
    fn only_approved_is_approved() {
        for state in [
            ApprovalState::Pending,
            ApprovalState::Rejected,
            ApprovalState::Restricted,
            ApprovalState::Unknown,
        ] {
            assert!(!state.is_approved());
        }
        assert!(ApprovalState::Approved.is_approved());
        assert_eq!(
            serde_json::to_value(ApprovalState::Unknown).unwrap(),
            "unknown"
        );
    }
}
