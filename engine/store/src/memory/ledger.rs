//! The distribution ledger of [`super::MemoryStore`]: the same writes as the SQL store's
//! (`sql/ledger.rs`), on maps; the store's one lock stands for the row locks.

use std::collections::BTreeMap;

use crate::ledger::{
    Delivery, Entry, LedgerFilter, LedgerWrite, cursor_of, origin_key, parse_cursor,
};
use crate::rules::{check_page_request, stored_instant};
use crate::{Error, Page, Result};

/// Deliveries by id and their entries by (id, seq).
#[derive(Debug, Default)]
pub(super) struct Ledger {
    deliveries: BTreeMap<String, Delivery>,
    entries: BTreeMap<(String, u64), Entry>,
}

impl Ledger {
    /// Applies `writes` in order; returns how many entries were written.
    pub(super) fn write(&mut self, writes: &[LedgerWrite]) -> u64 {
        let mut written = 0;
        for write in writes {
            match write {
                LedgerWrite::Open {
                    delivery_id,
                    facts,
                    at,
                    origin,
                } => {
                    if self.deliveries.contains_key(delivery_id) {
                        continue;
                    }
                    let (delivery, first) = Delivery::open(
                        delivery_id,
                        facts.clone(),
                        stored_instant(*at),
                        origin.clone(),
                    );
                    self.entries.insert((delivery_id.clone(), 1), first);
                    self.deliveries.insert(delivery_id.clone(), delivery);
                    written += 1;
                }
                LedgerWrite::Status {
                    matching,
                    status,
                    at,
                    detail,
                    origin,
                } => {
                    let key = origin_key(origin);
                    for delivery in self.deliveries.values_mut() {
                        if !matching.matches(delivery) {
                            continue;
                        }
                        let id = delivery.delivery_id.clone();
                        let seen = self
                            .entries
                            .range((id.clone(), 0)..=(id.clone(), u64::MAX))
                            .any(|(_, entry)| origin_key(&entry.origin) == key);
                        if seen {
                            continue;
                        }
                        let entry = delivery.record(
                            *status,
                            stored_instant(*at),
                            detail.clone(),
                            origin.clone(),
                        );
                        self.entries.insert((id, entry.seq), entry);
                        written += 1;
                    }
                }
            }
        }
        written
    }

    pub(super) fn list(
        &self,
        filter: &LedgerFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Delivery>> {
        check_page_request(cursor, limit)?;
        let after = cursor.map(parse_cursor).transpose()?;
        let mut items: Vec<&Delivery> = self
            .deliveries
            .values()
            .filter(|delivery| filter.matches(delivery))
            .filter(|delivery| {
                after.is_none_or(|(micros, id)| {
                    (
                        delivery.delivered_at.timestamp_micros(),
                        delivery.delivery_id.as_str(),
                    ) < (micros, id)
                })
            })
            .collect();
        items.sort_by(|left, right| {
            (right.delivered_at, &right.delivery_id).cmp(&(left.delivered_at, &left.delivery_id))
        });
        let page_size = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = items.len() > page_size;
        let items: Vec<Delivery> = items.into_iter().take(page_size).cloned().collect();
        let next_cursor = if more {
            items.last().map(cursor_of)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    pub(super) fn delivery(&self, delivery_id: &str) -> Result<(Delivery, Vec<Entry>)> {
        let found = self
            .deliveries
            .get(delivery_id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("delivery {delivery_id}")))?;
        let entries = self
            .entries
            .range((delivery_id.to_owned(), 0)..=(delivery_id.to_owned(), u64::MAX))
            .map(|(_, entry)| entry.clone())
            .collect();
        Ok((found, entries))
    }

    pub(super) fn deliveries_after(&self, after: Option<&str>, limit: u32) -> Vec<Delivery> {
        self.deliveries
            .values()
            .filter(|delivery| after.is_none_or(|after| delivery.delivery_id.as_str() > after))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    pub(super) fn entries_after(&self, after: Option<(&str, u64)>, limit: u32) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|((id, seq), _)| after.is_none_or(|after| (id.as_str(), *seq) > after))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(_, entry)| entry.clone())
            .collect()
    }
}
