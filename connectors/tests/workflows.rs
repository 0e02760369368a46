//! Every definition shipped under `workflows/` (not `workflows/examples/`, whose action
//! names are illustrative) validates against the real catalogue: every system's actions
//! and the events each system emits, as `gridflow validate` checks them.

#![allow(clippy::unwrap_used)]

use gridflow_connectors::sandbox::offline_catalog;
use gridflow_core::validate;

#[test]
fn shipped_workflows_validate_against_the_real_catalogue() {
    let catalogue = offline_catalog();
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows");
    let mut checked = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "yaml") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        validate::load(&source, &catalogue)
            .unwrap_or_else(|errors| panic!("{}: {errors:#?}", path.display()));
        checked += 1;
    }
    assert!(checked >= 3, "{checked}");

    // The example's event trigger is one the hub emits; only its illustrative actions
    // are unknown.
    let example =
        std::fs::read_to_string(folder.join("examples/partner-media-request.yaml")).unwrap();
    let errors = validate::load(&example, &catalogue).unwrap_err();
    assert!(
        errors.iter().all(|error| error.path.starts_with("steps[")),
        "{errors:#?}"
    );
}
