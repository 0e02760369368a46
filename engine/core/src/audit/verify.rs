//! Verification: every chain recomputed, each broken one reported with the first bad seq
//! and what is wrong, and the heads compared with the instance rows and the last
//! checkpoint, so that a truncated history or a deleted instance shows too.
//!
//! How a break is classified, at the first event `e` (position `k`, from 1) that does not
//! chain on from the events before it:
//! - `deleted`: `e.seq > k` (seqs are missing);
//! - `inserted`: `e.seq < k` (a seq appears twice), or `e.prev_hash` is the hash of an
//!   event before the previous one (something was slipped in between), or `e` is
//!   self-consistent but links to no event of the history;
//! - `reordered`: `e.prev_hash` is the hash of a later event, or `e`'s hash matches its
//!   content under another seq (seqs were swapped);
//! - `edited`: anything else (`e`'s content no longer matches its hash);
//! - `truncated`: the chain is sound but ends before the head that the instance row or the
//!   last checkpoint recorded;
//! - `missing_instance`: the last checkpoint covers an instance that is gone.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, PublicKey};
use super::log::AuditRecord;
use super::merkle::{ChainHead, merkle_root};
use crate::history::{GENESIS_HASH, RecordedEvent, chain_hash};
use crate::id::InstanceId;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An event's content no longer matches its hash.
    Edited,
    /// Events are missing from the middle of a history.
    Deleted,
    /// Events are out of order.
    Reordered,
    /// An event that the chain does not account for.
    Inserted,
    /// The end of a history is missing.
    Truncated,
    /// A whole instance (its row, its events or both) is missing.
    MissingInstance,
    /// A checkpoint is edited, unsigned, signed by another key or out of its chain.
    Checkpoint,
    /// An export line that is not what the format says (offline verification only).
    Malformed,
    /// A distribution ledger row or entry that its chain or the history does not account
    /// for (`audit::ledger`).
    Ledger,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The instance, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    /// The first bad seq (of the instance, of the audit log, or of the checkpoint chain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The line of an export file, from 1 (offline verification only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Explanation for people.
    pub message: String,
}

impl Problem {
    /// A problem with no instance, seq or line.
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            instance_id: None,
            seq: None,
            line: None,
            message: message.into(),
        }
    }

    /// About `instance`.
    pub fn instance(mut self, instance: &InstanceId) -> Self {
        self.instance_id = Some(instance.clone());
        self
    }

    /// At `seq`.
    pub fn seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }

    /// At export line `line`.
    pub fn line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Whether nothing is wrong.
    pub ok: bool,
    /// Instances whose history was checked.
    pub instances: u64,
    /// Events checked.
    pub events: u64,
    /// Audit log records checked.
    pub audit_records: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// The seq of the last checkpoint, which heads were compared with.
    pub last_checkpoint: Option<u64>,
    /// Everything wrong, in the order found.
    pub problems: Vec<Problem>,
}

/// An element of a hash chain: an instance's event or an audit log record.
pub trait Chained {
    /// Its seq.
    fn seq(&self) -> u64;
    /// Its recorded `prev_hash`.
    fn prev_hash(&self) -> &str;
    /// Its recorded `hash`.
    fn hash(&self) -> &str;
    /// The hash its content would have at `seq`.
    fn hash_at(&self, seq: u64) -> String;
}

impl Chained for RecordedEvent {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn hash_at(&self, seq: u64) -> String {
        chain_hash(
            &self.prev_hash,
            seq,
            &self.event_type,
            self.at,
            &self.actor,
            &self.data,
        )
    }
}

impl Chained for AuditRecord {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn hash_at(&self, seq: u64) -> String {
        chain_hash(
            &self.prev_hash,
            seq,
            &self.event_type,
            self.at,
            &self.actor,
            &self.data,
        )
    }
}

/// A broken chain: the index of the first bad element, and the problem (without instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Index into the checked slice.
    pub index: usize,
    /// What is wrong there.
    pub problem: Problem,
}

/// Checks one chain (in stored seq order) from genesis, classifying the first break.
pub fn check_chain<C: Chained>(chain: &[C]) -> Result<(), Break> {
    let mut expected_prev = GENESIS_HASH;
    for (index, element) in chain.iter().enumerate() {
        let expected_seq = index as u64 + 1;
        let seq = element.seq();
        let broken = |kind, message: String| Break {
            index,
            problem: Problem::new(kind, message).seq(seq.min(expected_seq)),
        };
        if seq > expected_seq {
            return Err(broken(
                ProblemKind::Deleted,
                format!(
                    "seq {expected_seq} is missing: seq {seq} follows seq {}",
                    expected_seq - 1
                ),
            ));
        }
        if seq < expected_seq {
            return Err(broken(
                ProblemKind::Inserted,
                format!("seq {seq} appears more than once"),
            ));
        }
        let content_ok = element.hash_at(seq) == element.hash();
        if element.prev_hash() == expected_prev {
            if content_ok {
                expected_prev = element.hash();
                continue;
            }
            return Err(broken(
                ProblemKind::Edited,
                format!("seq {seq}: the content does not match its hash (event edited)"),
            ));
        }
        let prev_hash = element.prev_hash();
        if let Some(later) = chain[index + 1..]
            .iter()
            .find(|later| later.hash() == prev_hash)
        {
            return Err(broken(
                ProblemKind::Reordered,
                format!(
                    "seq {seq} was recorded after seq {}, which now comes later (events reordered)",
                    later.seq()
                ),
            ));
        }
        if let Some(earlier) = chain[..index.saturating_sub(1)]
            .iter()
            .find(|earlier| earlier.hash() == prev_hash)
        {
            return Err(Break {
                index: index - 1,
                problem: Problem::new(
                    ProblemKind::Inserted,
                    format!(
                        "seq {}: an event that is not part of the chain was inserted after seq {}",
                        expected_seq - 1,
                        earlier.seq()
                    ),
                )
                .seq(expected_seq - 1),
            });
        }
        if !content_ok
            && (1..=chain.len() as u64 + 1)
                .filter(|other| *other != seq)
                .any(|other| element.hash_at(other) == element.hash())
        {
            return Err(broken(
                ProblemKind::Reordered,
                format!("seq {seq}: the event was recorded under another seq (events reordered)"),
            ));
        }
        if content_ok {
            return Err(broken(
                ProblemKind::Inserted,
                format!("seq {seq}: the event links to no event of this chain (event inserted)"),
            ));
        }
        return Err(broken(
            ProblemKind::Edited,
            format!("seq {seq}: prev_hash and content do not match the chain (event edited)"),
        ));
    }
    Ok(())
}

/// Where a chain stood according to a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checkpointed {
    checkpoint: u64,
    seq: u64,
    hash: String,
}

/// A verification in progress: fed one instance at a time (in any order), then finished.
///
/// It knows the current heads (the instance rows, read *before* the events, so an
/// instance that grows during the verification only has events beyond its head, which are
/// accepted when they chain on) and the heads of the last checkpoint.
#[derive(Debug)]
pub struct Verification {
    current: HashMap<InstanceId, ChainHead>,
    checkpointed: HashMap<InstanceId, Checkpointed>,
    last_checkpoint: Option<u64>,
    complete: bool,
    report: Report,
}

impl Verification {
    /// Starts a verification against the instance rows' `current` heads.
    pub fn new(current: Vec<ChainHead>) -> Self {
        Self {
            current: current
                .into_iter()
                .map(|head| (head.instance_id.clone(), head))
                .collect(),
            checkpointed: HashMap::new(),
            last_checkpoint: None,
            complete: true,
            report: Report::default(),
        }
    }

    /// Whether every instance is being checked (the default). A partial check (a
    /// filtered export) does not report the checkpointed instances it was not given.
    pub fn set_complete(&mut self, complete: bool) {
        self.complete = complete;
    }

    /// Checks the chain of checkpoints (numbering, links, hashes, signatures against
    /// `trusted`) and the Merkle root of the last one against `last_heads`, its stored
    /// heads, which later instance checks compare with. Returns the problems with the index
    /// of the checkpoint each is about (the heads are the last checkpoint's).
    pub fn checkpoints(
        &mut self,
        checkpoints: &[Checkpoint],
        last_heads: &[ChainHead],
        trusted: &PublicKey,
    ) -> Vec<(usize, Problem)> {
        let problems = self.checkpoint_problems(checkpoints, last_heads, trusted);
        for (_, problem) in &problems {
            self.report.problems.push(problem.clone());
        }
        problems
    }

    /// [`Verification::checkpoints`] without recording the problems in the report.
    pub(crate) fn checkpoint_problems(
        &mut self,
        checkpoints: &[Checkpoint],
        last_heads: &[ChainHead],
        trusted: &PublicKey,
    ) -> Vec<(usize, Problem)> {
        let mut problems = Vec::new();
        let mut prev_hash = GENESIS_HASH.to_owned();
        for (index, checkpoint) in checkpoints.iter().enumerate() {
            let expected = index as u64 + 1;
            let seq = checkpoint.body.seq;
            let problem = |message: String| Problem::new(ProblemKind::Checkpoint, message).seq(seq);
            if seq != expected {
                problems.push((
                    index,
                    problem(format!(
                        "checkpoint {expected} is missing: found checkpoint {seq}"
                    )),
                ));
            } else if checkpoint.body.prev_checkpoint_hash != prev_hash {
                problems.push((
                    index,
                    problem(format!(
                        "checkpoint {seq}: prev_checkpoint_hash does not match checkpoint {}",
                        seq.saturating_sub(1)
                    )),
                ));
            }
            if let Err(message) = checkpoint.check(trusted) {
                problems.push((index, problem(message)));
            }
            prev_hash.clone_from(&checkpoint.hash);
        }
        self.report.checkpoints = checkpoints.len() as u64;
        if let Some(last) = checkpoints.last() {
            let seq = last.body.seq;
            self.last_checkpoint = Some(seq);
            let root = merkle_root(last_heads);
            if root != last.body.merkle_root || last_heads.len() as u64 != last.body.instances {
                problems.push((
                    checkpoints.len() - 1,
                    Problem::new(
                        ProblemKind::Checkpoint,
                        format!(
                            "checkpoint {seq}: its stored heads ({} instances) do not give its Merkle root ({} instances)",
                            last_heads.len(),
                            last.body.instances
                        ),
                    )
                    .seq(seq),
                ));
            }
            self.checkpointed = last_heads
                .iter()
                .map(|head| {
                    (
                        head.instance_id.clone(),
                        Checkpointed {
                            checkpoint: seq,
                            seq: head.seq,
                            hash: head.hash.clone(),
                        },
                    )
                })
                .collect();
        }
        self.report.last_checkpoint = self.last_checkpoint;
        problems
    }

    /// Checks the server's audit log against the last checkpoint's audit head.
    pub fn audit_log(
        &mut self,
        records: &[AuditRecord],
        checkpoint: Option<&Checkpoint>,
    ) -> Option<(usize, Problem)> {
        let found = self.audit_log_problem(records, checkpoint);
        if let Some((_, problem)) = &found {
            self.report.problems.push(problem.clone());
        }
        found
    }

    /// [`Verification::audit_log`] without recording the problem in the report.
    pub(crate) fn audit_log_problem(
        &mut self,
        records: &[AuditRecord],
        checkpoint: Option<&Checkpoint>,
    ) -> Option<(usize, Problem)> {
        self.report.audit_records = records.len() as u64;
        let found = match check_chain(records) {
            Err(broken) => Some((broken.index, broken.problem)),
            Ok(()) => checkpoint.and_then(|checkpoint| {
                let body = &checkpoint.body;
                let at = body.audit_log_seq;
                if at == 0 {
                    return None;
                }
                let index = usize::try_from(at - 1).unwrap_or(usize::MAX);
                match records.get(index) {
                    None => Some((
                        records.len().saturating_sub(1),
                        Problem::new(
                            ProblemKind::Truncated,
                            format!(
                                "audit log: checkpoint {} recorded seq {at}, the log ends at seq {}",
                                body.seq,
                                records.len()
                            ),
                        )
                        .seq(records.len() as u64 + 1),
                    )),
                    Some(record) if record.hash != body.audit_log_hash => Some((
                        index,
                        Problem::new(
                            ProblemKind::Edited,
                            format!(
                                "audit log: rewritten at or before seq {at} (differs from checkpoint {})",
                                body.seq
                            ),
                        )
                        .seq(at),
                    )),
                    Some(_) => None,
                }
            }),
        };
        found.map(|(index, mut problem)| {
            if !problem.message.starts_with("audit log: ") {
                problem.message = format!("audit log: {}", problem.message);
            }
            (index, problem)
        })
    }

    /// Checks one instance's whole history (stored seq order). Returns the problem and the
    /// index of the event it is about (`None`: the history as a whole, such as a head
    /// that no event reaches).
    pub fn instance(
        &mut self,
        instance: &InstanceId,
        events: &[RecordedEvent],
    ) -> Option<(Option<usize>, Problem)> {
        let found = self.instance_problem(instance, events, None);
        if let Some((_, problem)) = &found {
            self.report.problems.push(problem.clone());
        }
        found
    }

    /// [`Verification::instance`] without recording the problem in the report; `head`,
    /// when given, replaces the head given to [`Verification::new`].
    pub(crate) fn instance_problem(
        &mut self,
        instance: &InstanceId,
        events: &[RecordedEvent],
        head: Option<ChainHead>,
    ) -> Option<(Option<usize>, Problem)> {
        self.report.instances += 1;
        self.report.events += events.len() as u64;
        let current = head.or_else(|| self.current.remove(instance));
        let checkpointed = self.checkpointed.remove(instance);
        check_instance(instance, events, current.as_ref(), checkpointed.as_ref())
    }

    /// Reports what was never fed: instance rows without events (truncated to nothing) and
    /// checkpointed instances that are gone.
    pub fn finish(mut self) -> Report {
        let mut rows: Vec<ChainHead> = self.current.drain().map(|(_, head)| head).collect();
        rows.sort_by(|left, right| left.instance_id.cmp(&right.instance_id));
        for head in rows {
            self.checkpointed.remove(&head.instance_id);
            if head.seq > 0 {
                self.report.instances += 1;
                self.report.problems.push(
                    Problem::new(
                        ProblemKind::Truncated,
                        format!(
                            "the instance's last seq is {}, but it has no events",
                            head.seq
                        ),
                    )
                    .instance(&head.instance_id)
                    .seq(1),
                );
            }
        }
        if !self.complete {
            self.checkpointed.clear();
        }
        let mut gone: Vec<(InstanceId, Checkpointed)> = self.checkpointed.drain().collect();
        gone.sort_by(|left, right| left.0.cmp(&right.0));
        for (instance, head) in gone {
            self.report.problems.push(
                Problem::new(
                    ProblemKind::MissingInstance,
                    format!(
                        "checkpoint {} covers this instance at seq {}, but it is gone (instance deleted)",
                        head.checkpoint, head.seq
                    ),
                )
                .instance(&instance)
                .seq(1),
            );
        }
        self.report.ok = self.report.problems.is_empty();
        self.report
    }

    /// Records a problem found outside these checks (an undecodable export line).
    pub fn problem(&mut self, problem: Problem) {
        self.report.problems.push(problem);
    }
}

fn check_instance(
    instance: &InstanceId,
    events: &[RecordedEvent],
    current: Option<&ChainHead>,
    checkpointed: Option<&Checkpointed>,
) -> Option<(Option<usize>, Problem)> {
    if let Err(broken) = check_chain(events) {
        return Some((Some(broken.index), broken.problem.instance(instance)));
    }
    let last_seq = events.len() as u64;
    let problem = |kind, seq: u64, message: String| {
        Some((
            None,
            Problem::new(kind, message).instance(instance).seq(seq),
        ))
    };
    if current.is_none() && checkpointed.is_some() && !events.is_empty() {
        return problem(
            ProblemKind::MissingInstance,
            1,
            "the instance's row is gone but its events remain (instance deleted)".to_owned(),
        );
    }
    let hash_at = |seq: u64| -> Option<&str> {
        usize::try_from(seq)
            .ok()
            .and_then(|seq| seq.checked_sub(1))
            .and_then(|index| events.get(index))
            .map(|event| event.hash.as_str())
    };
    if let Some(head) = current {
        if head.seq > last_seq {
            return problem(
                ProblemKind::Truncated,
                last_seq + 1,
                format!(
                    "history ends at seq {last_seq}, but the instance's last seq is {} (events removed from the end)",
                    head.seq
                ),
            );
        }
        if head.seq > 0 && hash_at(head.seq) != Some(head.hash.as_str()) {
            return problem(
                ProblemKind::Edited,
                head.seq,
                format!(
                    "seq {}: the hash differs from the instance's recorded head (history rewritten)",
                    head.seq
                ),
            );
        }
    }
    if let Some(head) = checkpointed {
        if head.seq > last_seq {
            return problem(
                ProblemKind::Truncated,
                last_seq + 1,
                format!(
                    "history ends at seq {last_seq}, but checkpoint {} recorded seq {} (events removed from the end)",
                    head.checkpoint, head.seq
                ),
            );
        }
        if head.seq > 0 && hash_at(head.seq) != Some(head.hash.as_str()) {
            return problem(
                ProblemKind::Edited,
                head.seq,
                format!(
                    "history rewritten at or before seq {}: it differs from checkpoint {}",
                    head.seq, head.checkpoint
                ),
            );
        }
    }
    None
}

/// Summary of a problem list for people: `kind instance seq: message` per line.
pub fn describe(problem: &Problem) -> String {
    let kind = serde_json::to_value(problem.kind)
        .ok()
        .and_then(|kind| kind.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut text = kind;
    if let Some(line) = problem.line {
        text = format!("line {line}: {text}");
    }
    if let Some(instance) = &problem.instance_id {
        text.push_str(&format!(" instance {instance}"));
    }
    if let Some(seq) = problem.seq {
        text.push_str(&format!(" seq {seq}"));
    }
    format!("{text}: {}", problem.message)
}
