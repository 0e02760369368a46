//! Transition coverage (temporal sdk-core's idea): which rows of the `//!` transition
//! tables of `src/machine/*.rs` neither the recorded histories nor the machine's tests
//! reach.
//!
//! The report is printed (`cargo test -p gridflow-core transition_rows -- --nocapture`);
//! unreached rows do not fail the test. It fails only when the machine notes a row id
//! that no table lists, or when a table lists an id twice.

use std::collections::{BTreeMap, BTreeSet};

use super::histories::{CASES, committed, replayed, run};
use super::{
    approvals, bindings, children, compensation, fan_out, fan_out_kinds, graph, joins, lifecycle,
    recovery, repeat, retries, signals,
};
use crate::machine::coverage::rows_taken;

/// Every row id of the tables, with the file whose `//!` lists it.
fn table_rows() -> BTreeMap<String, String> {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/machine");
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "rs"))
        .collect();
    files.sort();
    let mut rows = BTreeMap::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let Some(cell) = line.strip_prefix("//! | `") else {
                continue;
            };
            let id = cell.split('`').next().unwrap().to_owned();
            let earlier = rows.insert(id.clone(), name.clone());
            assert!(
                earlier.is_none(),
                "row `{id}` is listed twice ({earlier:?}, {name})"
            );
        }
    }
    rows
}

#[test]
fn transition_rows_that_no_test_reaches_are_reported() {
    let rows = table_rows();
    let mut reached = BTreeSet::new();
    for case in CASES {
        let ((), taken) = rows_taken(|| {
            run(case);
            replayed(&committed(case));
        });
        reached.extend(taken);
    }
    let scenarios = [
        graph::SCENARIOS,
        fan_out::SCENARIOS,
        retries::SCENARIOS,
        compensation::SCENARIOS,
        lifecycle::SCENARIOS,
        approvals::SCENARIOS,
        bindings::SCENARIOS,
        signals::SCENARIOS,
        joins::SCENARIOS,
        repeat::SCENARIOS,
        fan_out_kinds::SCENARIOS,
        children::SCENARIOS,
        recovery::SCENARIOS,
    ];
    for (_, scenario) in scenarios.into_iter().flatten() {
        let ((), taken) = rows_taken(scenario);
        reached.extend(taken);
    }
    let unknown: Vec<_> = reached
        .iter()
        .filter(|id| !rows.contains_key(**id))
        .collect();
    assert!(
        unknown.is_empty(),
        "the machine took rows that no `//!` table lists: {unknown:?}"
    );
    let unreached: Vec<_> = rows
        .iter()
        .filter(|(id, _)| !reached.contains(id.as_str()))
        .collect();
    // The report is this test's purpose: print it whether or not rows are unreached.
    #[allow(clippy::print_stdout)]
    {
        println!(
            "transition coverage: {} of {} rows reached by the recorded histories and the machine's tests",
            rows.len() - unreached.len(),
            rows.len()
        );
        for (id, file) in &unreached {
            println!("  not reached: `{id}` (machine/{file})");
        }
    }
}
