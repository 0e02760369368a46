//! Validation of a 20,000-step definition (1 MB of YAML): refused by the default
//! `limits.max_steps`, and validated in under a second and 100 MB with the limit raised.
//!
//! Its own test binary, so that the process's peak resident memory (`VmHWM`) is this
//! test's. The figures are printed; run with `--nocapture` to see them. The one-second
//! bound is asserted in a release build (`cargo test --release -p gridflow-core --test
//! validation_scale`); a debug build parses YAML ten times slower and gets a looser bound.

// The core forbids reading the clock; this test measures, it does not decide.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use gridflow_core::limits::Limits;
use gridflow_core::validate::load_within;
use serde_json::{Value, json};

const STEPS: usize = 20_000;

/// A chain: each step needs the one before it; every fourth step also reads the output of
/// the step two before it, which it needs only through the one between, so that those
/// reads go through the upstream check. (The YAML parser refuses documents of more than
/// 250,000 nodes, about 20,000 steps of this shape.)
fn chain(steps: usize) -> String {
    let mut source = String::from("id: long-chain\nsteps:\n  - id: s0\n    action: core.echo\n");
    for index in 1..steps {
        source.push_str(&format!(
            "  - id: s{index}\n    needs: [s{}]\n    action: core.echo\n",
            index - 1
        ));
        if index % 4 == 0 {
            source.push_str(&format!(
                "    with: {{a: \"${{steps.s{}.output}}\"}}\n",
                index - 2
            ));
        }
    }
    source
}

fn catalog() -> BTreeMap<String, Value> {
    BTreeMap::from([("core.echo".to_owned(), json!({"type": "object"}))])
}

/// The process's peak resident memory so far, in bytes (Linux).
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

#[test]
fn a_20000_step_definition_is_refused_by_default_and_validated_fast_when_allowed() {
    let source = chain(STEPS);
    println!("definition: {STEPS} steps, {} bytes of YAML", source.len());

    let default_limit = Limits::default().max_steps;
    let started = Instant::now();
    let errors = load_within(&source, &catalog(), default_limit).unwrap_err();
    println!(
        "refused by limits.max_steps = {default_limit} in {:?}",
        started.elapsed()
    );
    assert_eq!(errors.len(), 1, "{:?}", &errors[..errors.len().min(3)]);
    assert_eq!(errors[0].path, "steps", "{}", errors[0].message);
    assert!(
        errors[0].message.starts_with(&format!(
            "the definition has {STEPS} steps, more than limits.max_steps ({default_limit})"
        )),
        "{}",
        errors[0].message
    );

    let started = Instant::now();
    let definition = load_within(&source, &catalog(), NonZeroU32::new(20_000).unwrap())
        .unwrap_or_else(|errors| panic!("{:?}", &errors[..errors.len().min(3)]));
    let elapsed = started.elapsed();
    let peak = peak_resident_bytes();
    println!(
        "validated with limits.max_steps = 20000 in {elapsed:?}; peak resident memory of the process {} MB",
        peak.map_or("unknown".to_owned(), |bytes| format!(
            "{:.1}",
            bytes as f64 / 1e6
        ))
    );
    assert_eq!(definition.steps.len(), STEPS);
    // A debug build spends most of its time in the YAML parser (about 10 s here); the
    // bound still catches a return of the quadratic check, which took 13.5 s in release.
    let bound = if cfg!(debug_assertions) {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(1)
    };
    assert!(
        elapsed < bound,
        "validation took {elapsed:?}, more than {bound:?}"
    );
    if let Some(peak) = peak {
        assert!(peak < 100_000_000, "peak resident memory {peak} bytes");
    }
    // Measured first: the other case of this binary runs after, in the same test, so that
    // it does not share the peak.
    a_read_of_a_step_that_is_not_upstream_is_still_refused_in_a_long_chain();
}

fn a_read_of_a_step_that_is_not_upstream_is_still_refused_in_a_long_chain() {
    let mut source = chain(5_000);
    // A last step that needs nothing reads the end of the chain.
    source.push_str(
        "  - id: loose\n    action: core.echo\n    with: {x: \"${steps.s4999.output}\"}\n",
    );
    let limit = NonZeroU32::new(10_000).expect("10,000 is not zero");
    let errors = load_within(&source, &catalog(), limit).expect_err("the loose read is refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "steps[5000].with.x");
    assert!(
        errors[0]
            .message
            .contains("which step \"loose\" does not need"),
        "{}",
        errors[0].message
    );
}
