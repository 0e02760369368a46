//! Path and error plumbing: where in a definition document something is wrong
//! ([`Path`], rendered as `steps[2].needs[0]`), and the list of errors a validation pass
//! collects ([`Errors`]), sorted by path and without duplicates when it finishes.

use std::collections::BTreeSet;

use jsonschema::paths::{Location, LocationSegment};
use serde_json::Value;

use super::DefinitionError;

/// One step into a document: an index into a list or a key of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Segment {
    Index(usize),
    Key(String),
}

/// A location inside the definition document.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Path(Vec<Segment>);

impl Path {
    pub(super) fn root() -> Self {
        Self::default()
    }

    pub(super) fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        Self(segments)
    }

    pub(super) fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    pub(super) fn join(&self, other: &Path) -> Self {
        let mut segments = self.0.clone();
        segments.extend(other.0.iter().cloned());
        Self(segments)
    }

    pub(super) fn from_location(location: &Location) -> Self {
        Self(
            location
                .iter()
                .map(|segment| match segment {
                    LocationSegment::Property(key) => Segment::Key(key.into_owned()),
                    LocationSegment::Index(index) => Segment::Index(index),
                })
                .collect(),
        )
    }

    /// The last segment: what the path ends in.
    pub(super) fn last(&self) -> Option<&Segment> {
        self.0.last()
    }

    /// The value at this path inside `document`.
    pub(super) fn lookup<'a>(&self, document: &'a Value) -> Option<&'a Value> {
        self.0
            .iter()
            .try_fold(document, |value, segment| match (segment, value) {
                (Segment::Key(key), Value::Object(entries)) => entries.get(key),
                (Segment::Index(index), Value::Array(items)) => items.get(*index),
                _ => None,
            })
    }

    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Index(index) => out.push_str(&format!("[{index}]")),
                Segment::Key(key) if is_plain_key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Key(key) => out.push_str(&format!("[{}]", Value::String(key.clone()))),
            }
        }
        out
    }
}

fn is_plain_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric() || first == '_')
        && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_' || rest == '-')
}

/// The errors found so far, each at its path, in the order they were found.
#[derive(Debug, Default)]
pub(super) struct Errors(Vec<(Path, String)>);

impl Errors {
    pub(super) fn push(&mut self, at: &Path, message: impl Into<String>) {
        self.0.push((at.clone(), message.into()));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many errors were pushed so far: the index the next one will have.
    pub(super) fn count(&self) -> usize {
        self.0.len()
    }

    /// Removes the errors at the given indices (as counted by [`Errors::count`]).
    pub(super) fn withdraw(&mut self, indices: &BTreeSet<usize>) {
        let mut index = 0;
        self.0.retain(|_| {
            index += 1;
            !indices.contains(&(index - 1))
        });
    }

    /// Sorted by path (stable, so errors at one path keep the order they were found in),
    /// without duplicates.
    pub(super) fn finish(mut self) -> Result<(), Vec<DefinitionError>> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.0.sort_by(|left, right| left.0.cmp(&right.0));
        let mut seen = BTreeSet::new();
        Err(self
            .0
            .into_iter()
            .filter(|entry| seen.insert(entry.clone()))
            .map(|(at, message)| DefinitionError {
                path: at.render(),
                message,
            })
            .collect())
    }
}
