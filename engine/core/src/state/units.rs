//! The units of a fan-out, one per item, with a tally kept as they change, so that the
//! machine's questions about a fan-out (is every item done? how many slots are held?
//! which item runs next? which failed?) cost O(1) or O(log n) per event instead of a scan
//! of every item (issue 12: a fan-out over 100,000 items runs as fast per item as one
//! over 1,000).
//!
//! The tally is derived: it is not serialized (a fan-out is stored as its list of units,
//! as before) and is rebuilt from the list when a state is read, so stored states and
//! histories fold exactly as they did, and two fan-outs are equal when their units are.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Unit;
use crate::status::StepStatus;

/// The units of a fan-out by item index, and their tally.
#[derive(Debug, Clone, Default)]
pub struct Units {
    list: Vec<Unit>,
    tally: Tally,
}

/// Counts of a fan-out's units by kind, and the indexes the machine looks for.
#[derive(Debug, Clone, Default)]
struct Tally {
    /// Units per kind, indexed by [`kind`].
    kinds: [usize; KINDS],
    /// Items ready to be scheduled.
    ready: BTreeSet<u32>,
    /// Items failed for good.
    failed: BTreeSet<u32>,
    /// Units per attempt number, for the highest attempt.
    attempts: BTreeMap<u32, usize>,
}

const KINDS: usize = 8;
const READY: usize = 0;
const SCHEDULED: usize = 1;
const RUNNING: usize = 2;
const RETRYING: usize = 3;
const SUCCEEDED: usize = 4;
const FAILED: usize = 5;
const APPROVAL: usize = 6;
const WAIT: usize = 7;

fn kind(unit: &Unit) -> usize {
    match unit {
        Unit::Ready { .. } => READY,
        Unit::Scheduled { .. } => SCHEDULED,
        Unit::Running { .. } => RUNNING,
        Unit::Retrying { .. } => RETRYING,
        Unit::Succeeded { .. } => SUCCEEDED,
        Unit::Failed { .. } => FAILED,
        Unit::Approval { .. } => APPROVAL,
        Unit::Wait { .. } => WAIT,
    }
}

impl Tally {
    fn add(&mut self, index: u32, unit: &Unit) {
        let kind = kind(unit);
        self.kinds[kind] += 1;
        match kind {
            READY => {
                self.ready.insert(index);
            }
            FAILED => {
                self.failed.insert(index);
            }
            _ => {}
        }
        *self.attempts.entry(unit.attempt()).or_default() += 1;
    }

    fn remove(&mut self, index: u32, unit: &Unit) {
        let kind = kind(unit);
        self.kinds[kind] -= 1;
        match kind {
            READY => {
                self.ready.remove(&index);
            }
            FAILED => {
                self.failed.remove(&index);
            }
            _ => {}
        }
        let attempt = unit.attempt();
        if let Some(count) = self.attempts.get_mut(&attempt) {
            *count -= 1;
            if *count == 0 {
                self.attempts.remove(&attempt);
            }
        }
    }
}

impl Units {
    /// `count` units, every one ready to run as `attempt`.
    pub fn ready(count: usize, attempt: u32) -> Self {
        Self::from(vec![Unit::Ready { attempt }; count])
    }

    /// Replaces the unit of item `index`; `false` (and nothing changed) if there is none.
    pub fn set(&mut self, index: u32, unit: Unit) -> bool {
        let Some(slot) = self.list.get_mut(index as usize) else {
            return false;
        };
        self.tally.remove(index, slot);
        self.tally.add(index, &unit);
        *slot = unit;
        true
    }

    /// Whether every item succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.tally.kinds[SUCCEEDED] == self.list.len()
    }

    /// The first item (by index) that failed for good, with its unit.
    pub fn first_failed(&self) -> Option<(u32, &Unit)> {
        let index = *self.tally.failed.first()?;
        Some((index, self.list.get(index as usize)?))
    }

    /// The first item (by index) ready to be scheduled, with its unit.
    pub fn first_ready(&self) -> Option<(u32, &Unit)> {
        let index = *self.tally.ready.first()?;
        Some((index, self.list.get(index as usize)?))
    }

    /// How many units hold a concurrency slot ([`Unit::holds_slot`]).
    pub fn slots_held(&self) -> usize {
        let kinds = &self.tally.kinds;
        kinds[SCHEDULED] + kinds[RUNNING] + kinds[RETRYING] + kinds[APPROVAL] + kinds[WAIT]
    }

    /// Whether any unit waits for a person or a signal ([`Unit::is_waiting`]).
    pub fn any_waiting(&self) -> bool {
        self.tally.kinds[APPROVAL] + self.tally.kinds[WAIT] > 0
    }

    /// Whether the fan-out can go on by itself: a unit is in flight, or one is ready and
    /// no waiting unit holds back the ready ones.
    pub fn any_ready_or_in_flight(&self) -> bool {
        let kinds = &self.tally.kinds;
        kinds[SCHEDULED] + kinds[RUNNING] > 0 || (kinds[READY] > 0 && !self.any_waiting())
    }

    /// The highest attempt number of any unit (0 without units).
    pub fn max_attempt(&self) -> u32 {
        self.tally
            .attempts
            .last_key_value()
            .map_or(0, |(attempt, _)| *attempt)
    }

    /// The fan-out's status: running if any item runs, else scheduled if any is ready
    /// (and no waiting item holds back the ready ones) or scheduled, else retrying if any
    /// retries, else waiting if any waits for a person or a signal, else running.
    pub fn status(&self) -> StepStatus {
        let kinds = &self.tally.kinds;
        let waiting = self.any_waiting();
        let ready = if waiting { 0 } else { kinds[READY] };
        if kinds[RUNNING] > 0 {
            StepStatus::Running
        } else if ready + kinds[SCHEDULED] > 0 {
            StepStatus::Scheduled
        } else if kinds[RETRYING] > 0 {
            StepStatus::Retrying
        } else if waiting {
            StepStatus::Waiting
        } else {
            StepStatus::Running
        }
    }
}

impl From<Vec<Unit>> for Units {
    fn from(list: Vec<Unit>) -> Self {
        let mut tally = Tally::default();
        for (index, unit) in list.iter().enumerate() {
            tally.add(index as u32, unit);
        }
        Self { list, tally }
    }
}

impl Deref for Units {
    type Target = [Unit];

    fn deref(&self) -> &[Unit] {
        &self.list
    }
}

impl PartialEq for Units {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Serialize for Units {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Units {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Unit>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebuilt(units: &Units) -> Units {
        Units::from(units.list.clone())
    }

    #[test]
    fn the_tally_follows_every_change_as_a_rebuild_would() {
        let mut units = Units::ready(4, 1);
        assert_eq!(units.first_ready().map(|(index, _)| index), Some(0));
        assert!(units.set(0, Unit::Scheduled { attempt: 1 }));
        assert!(units.set(2, Unit::Scheduled { attempt: 1 }));
        assert_eq!(units.slots_held(), 2);
        assert_eq!(units.first_ready().map(|(index, _)| index), Some(1));
        assert_eq!(units.status(), StepStatus::Scheduled);
        assert!(units.set(
            0,
            Unit::Succeeded {
                attempt: 1,
                output: serde_json::json!(1)
            }
        ));
        assert!(units.set(
            2,
            Unit::Failed {
                attempt: 3,
                error: crate::event::ErrorInfo::permanent("x", "y")
            }
        ));
        assert_eq!(units.first_failed().map(|(index, _)| index), Some(2));
        assert_eq!(units.max_attempt(), 3);
        assert!(!units.set(9, Unit::Ready { attempt: 1 }));
        let again = rebuilt(&units);
        assert_eq!(again.tally.kinds, units.tally.kinds);
        assert_eq!(again.tally.ready, units.tally.ready);
        assert_eq!(again.tally.failed, units.tally.failed);
        assert_eq!(again.tally.attempts, units.tally.attempts);
        assert!(!units.all_succeeded());
        let json = serde_json::to_value(&units).unwrap();
        assert!(json.is_array(), "stored as the plain list");
        let read: Units = serde_json::from_value(json).unwrap();
        assert_eq!(read, units);
        assert_eq!(read.tally.kinds, units.tally.kinds);
    }
}
