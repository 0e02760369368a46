//! Tamper cases on synthetic chains: each kind of damage is reported as itself, at the
//! first bad seq; and an export verifies offline until one byte changes.

use chrono::DateTime;
use ed25519_dalek::SigningKey;
use serde_json::json;

use super::export::{ExportLine, Header, InstanceLine};
use super::*;
use crate::history::{GENESIS_HASH, RecordedEvent, chain_hash};
use crate::id::InstanceId;

/// A valid history of `length` events of instance `id`.
fn history(id: &str, length: u64) -> Vec<RecordedEvent> {
    let mut prev = GENESIS_HASH.to_owned();
    (1..=length)
        .map(|seq| {
            let at = DateTime::from_timestamp_micros(1_700_000_000_000_000 + seq as i64).unwrap();
            let data = json!({"step": "s", "attempt": seq});
            let hash = chain_hash(&prev, seq, "step_started", at, "system", &data);
            let event = RecordedEvent {
                instance_id: InstanceId::from(id),
                seq,
                event_type: "step_started".into(),
                at,
                actor: "system".into(),
                data,
                prev_hash: prev.clone(),
                hash: hash.clone(),
            };
            prev = hash;
            event
        })
        .collect()
}

fn head(events: &[RecordedEvent]) -> ChainHead {
    let last = events.last().unwrap();
    ChainHead {
        instance_id: last.instance_id.clone(),
        seq: last.seq,
        hash: last.hash.clone(),
    }
}

fn first_problem(events: &[RecordedEvent], current: ChainHead) -> Option<(ProblemKind, u64)> {
    let mut verification = Verification::new(vec![current.clone()]);
    verification.instance(&current.instance_id, events);
    let report = verification.finish();
    report
        .problems
        .first()
        .map(|problem| (problem.kind, problem.seq.unwrap()))
}

#[test]
fn an_untouched_history_verifies() {
    let events = history("a", 6);
    assert_eq!(first_problem(&events, head(&events)), None);
}

#[test]
fn an_edited_event_is_reported_at_its_seq() {
    let mut events = history("a", 6);
    let original = head(&events);
    events[2].data = json!({"step": "s", "attempt": 99});
    assert_eq!(
        first_problem(&events, original),
        Some((ProblemKind::Edited, 3))
    );
}

#[test]
fn a_deleted_event_is_reported_at_the_missing_seq() {
    let mut events = history("a", 6);
    let original = head(&events);
    events.remove(3);
    assert_eq!(
        first_problem(&events, original),
        Some((ProblemKind::Deleted, 4))
    );
}

#[test]
fn swapped_seqs_are_reported_as_reordered() {
    let mut events = history("a", 6);
    let original = head(&events);
    // As an SQL swap does it: the rows keep their content and exchange seq numbers.
    events[2].seq = 4;
    events[3].seq = 3;
    events.swap(2, 3);
    assert_eq!(
        first_problem(&events, original),
        Some((ProblemKind::Reordered, 3))
    );
}

#[test]
fn an_inserted_event_is_reported() {
    let mut events = history("a", 6);
    let original = head(&events);
    // A self-consistent event slipped in as seq 3, the later ones renumbered.
    let forged_hash = chain_hash(
        &events[1].hash,
        3,
        "step_started",
        events[1].at,
        "mallory",
        &json!({}),
    );
    let forged = RecordedEvent {
        seq: 3,
        actor: "mallory".into(),
        data: json!({}),
        prev_hash: events[1].hash.clone(),
        hash: forged_hash,
        ..events[1].clone()
    };
    events.insert(2, forged);
    for (index, event) in events.iter_mut().enumerate() {
        event.seq = index as u64 + 1;
    }
    assert_eq!(
        first_problem(&events, original),
        Some((ProblemKind::Inserted, 3))
    );
}

#[test]
fn a_truncated_history_is_reported_after_its_last_event() {
    let mut events = history("a", 6);
    let original = head(&events);
    events.truncate(4);
    assert_eq!(
        first_problem(&events, original),
        Some((ProblemKind::Truncated, 5))
    );
}

fn checkpoint_of(heads: &[ChainHead], key: &SigningKey) -> Checkpoint {
    CheckpointBody {
        seq: 1,
        at: DateTime::from_timestamp_micros(1_700_000_100_000_000).unwrap(),
        merkle_root: merkle_root(heads),
        instances: heads.len() as u64,
        prev_checkpoint_hash: GENESIS_HASH.to_owned(),
        audit_log_seq: 0,
        audit_log_hash: GENESIS_HASH.to_owned(),
    }
    .sign(key)
}

#[test]
fn a_deleted_instance_is_reported_against_the_checkpoint() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let a = history("a", 3);
    let b = history("b", 2);
    let heads = vec![head(&a), head(&b)];
    let checkpoint = checkpoint_of(&heads, &key);
    // Instance b is gone: no row, no events.
    let mut verification = Verification::new(vec![head(&a)]);
    let problems = verification.checkpoints(
        std::slice::from_ref(&checkpoint),
        &heads,
        &PublicKey(key.verifying_key()),
    );
    assert!(problems.is_empty(), "{problems:?}");
    verification.instance(&InstanceId::from("a"), &a);
    let report = verification.finish();
    assert!(!report.ok);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].kind, ProblemKind::MissingInstance);
    assert_eq!(report.problems[0].instance_id, Some(InstanceId::from("b")));
}

#[test]
fn truncation_with_a_rewritten_head_is_caught_by_the_checkpoint() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let a = history("a", 5);
    let checkpoint = checkpoint_of(&[head(&a)], &key);
    let truncated = &a[..3];
    // The instance row was "fixed" to match the truncated history.
    let mut verification = Verification::new(vec![head(truncated)]);
    verification.checkpoints(&[checkpoint], &[head(&a)], &PublicKey(key.verifying_key()));
    verification.instance(&InstanceId::from("a"), truncated);
    let report = verification.finish();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].kind, ProblemKind::Truncated);
    assert_eq!(report.problems[0].seq, Some(4));
}

fn export_text(instances: &[Vec<RecordedEvent>], key: &SigningKey) -> String {
    let heads: Vec<ChainHead> = instances.iter().map(|events| head(events)).collect();
    let checkpoint = checkpoint_of(&heads, key);
    let mut writer = LineWriter::new();
    let mut lines = vec![
        writer.write(&ExportLine::Header(Header {
            format: export::EXPORT_FORMAT.into(),
            generated_at: checkpoint.body.at,
            complete: true,
            filter: json!({}),
        })),
        writer.write(&ExportLine::Key {
            algorithm: "ed25519".into(),
            public_key: PublicKey(key.verifying_key()).to_string(),
        }),
        writer.write(&ExportLine::Checkpoint {
            checkpoint,
            heads: Some(heads.clone()),
        }),
    ];
    for events in instances {
        let last = head(events);
        lines.push(writer.write(&ExportLine::Instance(InstanceLine {
            instance_id: last.instance_id.clone(),
            definition: "d".into(),
            version: 1,
            last_seq: last.seq,
            last_hash: last.hash.clone(),
        })));
        for event in events {
            lines.push(writer.write(&ExportLine::Event(event.clone())));
        }
    }
    lines.push(writer.end());
    lines.join("\n") + "\n"
}

fn verify_text(text: &[u8], trusted: Option<PublicKey>) -> Report {
    let mut verifier = ExportVerifier::new(trusted);
    for line in text.split(|byte| *byte == b'\n') {
        if !line.is_empty() {
            verifier.line(line);
        }
    }
    verifier.finish()
}

#[test]
fn an_export_verifies_offline_and_any_flipped_byte_names_its_line() {
    let key = SigningKey::from_bytes(&[5; 32]);
    let trusted = PublicKey(key.verifying_key());
    let text = export_text(&[history("a", 3), history("b", 4)], &key);
    let report = verify_text(text.as_bytes(), Some(trusted));
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.events, 7);

    // Every byte position, one at a time (a few hundred bytes per line, 12 lines).
    let bytes = text.as_bytes();
    for position in (0..bytes.len()).step_by(11) {
        if bytes[position] == b'\n' {
            continue;
        }
        let mut flipped = bytes.to_vec();
        flipped[position] ^= 0x01;
        let line = bytes[..position]
            .iter()
            .filter(|byte| **byte == b'\n')
            .count() as u64
            + 1;
        let report = verify_text(&flipped, Some(trusted));
        assert!(!report.ok, "flip at {position} went unnoticed");
        assert_eq!(
            report.problems[0].line,
            Some(line),
            "flip at {position}: {:?}",
            report.problems
        );
    }
}

#[test]
fn an_export_signed_by_another_key_fails() {
    let key = SigningKey::from_bytes(&[5; 32]);
    let other = PublicKey(SigningKey::from_bytes(&[6; 32]).verifying_key());
    let text = export_text(&[history("a", 2)], &key);
    let report = verify_text(text.as_bytes(), Some(other));
    assert!(!report.ok);
    assert_eq!(report.problems[0].kind, ProblemKind::Checkpoint);
    assert_eq!(report.problems[0].line, Some(2));
}

#[test]
fn a_truncated_export_file_fails() {
    let key = SigningKey::from_bytes(&[5; 32]);
    let text = export_text(&[history("a", 2), history("b", 2)], &key);
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines[..lines.len() - 3].join("\n");
    let report = verify_text(cut.as_bytes(), None);
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|problem| problem.message.contains("file truncated"))
    );
}
