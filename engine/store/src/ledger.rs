//! [`LedgerStore`]: the distribution ledger, one row per delivery and its hash-chained
//! entries (`gridflow_core::audit::ledger` defines both, the chain and the precedence).
//!
//! Ledger changes are written two ways, with the same rules ([`LedgerWrite`]):
//! - in the batch of the step's success (`Batch::ledger`), in the same transaction;
//! - by [`LedgerStore::apply_ledger`] for an event, in its own transaction.
//!
//! Writes are idempotent: a delivery whose id exists is not opened again, and a status
//! change whose origin a delivery already has an entry from is not written again. The
//! rows a status change touches are locked (`SELECT … FOR UPDATE` on PostgreSQL; SQLite has
//! one writer), so two transactions never extend one chain from the same head.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

pub use gridflow_core::audit::ledger::{Delivery, Entry, Facts, Status};
use gridflow_core::history::canonical_json;

use crate::{Page, Result};

/// One change to write to the ledger.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerWrite {
    /// A new delivery and its first entry; nothing when `delivery_id` exists.
    Open {
        /// Deterministic id: a batch written twice opens it once.
        delivery_id: String,
        /// What was delivered to whom.
        facts: Facts,
        /// When.
        at: DateTime<Utc>,
        /// The step attempt (or event) that made it.
        origin: Value,
    },
    /// A status change of every delivery it matches, as an entry on each (none on a
    /// delivery that already has an entry of this `origin`).
    Status {
        /// Which deliveries.
        matching: StatusMatch,
        /// The new status.
        status: Status,
        /// When.
        at: DateTime<Utc>,
        /// Kept with the entry (never credentials or links).
        detail: Value,
        /// The step attempt or event that reported it.
        origin: Value,
    },
}

/// The deliveries a status change applies to: those of `channel` and `reference`,
/// narrowed to `partner` and `receipt` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusMatch {
    /// The channel.
    pub channel: String,
    /// The channel's reference of the share.
    pub reference: String,
    /// Only this partner's.
    pub partner: Option<String>,
    /// Only the one with this receipt.
    pub receipt: Option<String>,
}

impl StatusMatch {
    /// Whether `delivery` is one of those it matches.
    pub fn matches(&self, delivery: &Delivery) -> bool {
        let facts = &delivery.facts;
        facts.channel == self.channel
            && facts.reference == self.reference
            && self
                .partner
                .as_ref()
                .is_none_or(|partner| partner == &facts.partner)
            && self
                .receipt
                .as_ref()
                .is_none_or(|receipt| Some(receipt) == facts.receipt.as_ref())
    }
}

/// Filter of [`LedgerStore::list_deliveries`]; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    /// The asset system.
    pub system: Option<String>,
    /// The asset id.
    pub asset_id: Option<String>,
    /// The version.
    pub version: Option<String>,
    /// The partner.
    pub partner: Option<String>,
    /// The channel.
    pub channel: Option<String>,
    /// Any of these current statuses (all when empty).
    pub statuses: Vec<Status>,
}

impl LedgerFilter {
    /// Whether `delivery` passes the filter.
    pub fn matches(&self, delivery: &Delivery) -> bool {
        let facts = &delivery.facts;
        let equal = |wanted: &Option<String>, value: &str| {
            wanted.as_deref().is_none_or(|wanted| wanted == value)
        };
        equal(&self.system, &facts.system)
            && equal(&self.asset_id, &facts.asset_id)
            && equal(&self.version, &facts.version)
            && equal(&self.partner, &facts.partner)
            && equal(&self.channel, &facts.channel)
            && (self.statuses.is_empty() || self.statuses.contains(&delivery.status))
    }
}

/// The text an origin is compared by: its canonical JSON.
pub(crate) fn origin_key(origin: &Value) -> String {
    canonical_json(origin)
}

/// The page cursor after `delivery` in newest-first order: `<delivered_at µs>/<id>`.
pub(crate) fn cursor_of(delivery: &Delivery) -> String {
    format!(
        "{}/{}",
        delivery.delivered_at.timestamp_micros(),
        delivery.delivery_id
    )
}

/// The position a cursor names; `Invalid` naming it when it is not one.
pub(crate) fn parse_cursor(cursor: &str) -> Result<(i64, &str)> {
    cursor
        .split_once('/')
        .and_then(|(micros, id)| Some((micros.parse().ok()?, id)))
        .ok_or_else(|| crate::Error::Invalid(format!("cursor {cursor:?} is not a ledger cursor")))
}

/// The distribution ledger.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Writes `writes` in order in one transaction (an event's changes); returns how many
    /// entries were written (0 when all were written before).
    async fn apply_ledger(&self, writes: &[LedgerWrite]) -> Result<u64>;
    /// Deliveries matching `filter`, newest first (by `delivered_at`, then id).
    async fn list_deliveries(
        &self,
        filter: &LedgerFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Delivery>>;
    /// One delivery and its entries in seq order; `NotFound` naming it.
    async fn delivery(&self, delivery_id: &str) -> Result<(Delivery, Vec<Entry>)>;
    /// Deliveries by id after `after`, at most `limit` (audit and export).
    async fn deliveries_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<Delivery>>;
    /// Entries by (delivery id, seq) after `after`, at most `limit` (audit and export).
    async fn entries_after(&self, after: Option<(&str, u64)>, limit: u32) -> Result<Vec<Entry>>;
}
