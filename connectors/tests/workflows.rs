//! Every definition shipped under `workflows/` validates against the real catalogue: every
//! system's actions with their argument schemas and the events each system emits, as
//! `gridflow validate` checks them. No stand-in catalogue: a definition that calls an
//! action no connector has, or passes it an argument its schema refuses, fails here.
//! Each file's definition id is its file name, and each opens with a comment saying what
//! it runs, for whom.

#![allow(clippy::unwrap_used)]

use gridflow_connectors::sandbox::offline_catalog;
use gridflow_core::validate;

#[test]
fn shipped_workflows_validate_against_the_real_catalogue() {
    let catalogue = offline_catalog();
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        let definition = validate::load(&source, &catalogue)
            .unwrap_or_else(|errors| panic!("{}: {errors:#?}", path.display()));
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(definition.id.as_str(), stem, "{}", path.display());
        assert!(
            source.starts_with('#'),
            "{} does not open with a comment saying what it runs",
            path.display()
        );
    }
}
