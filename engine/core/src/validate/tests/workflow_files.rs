//! Every definition shipped under `workflows/` validates, with the connectors' real catalog
//! where the test knows it.

use super::*;

fn with_actions(mut base: BTreeMap<String, Value>, names: &[&str]) -> BTreeMap<String, Value> {
    for name in names {
        base.insert((*name).to_owned(), json!({"type": "object"}));
    }
    base
}

fn definition_files(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
        })
        .collect();
    files.sort();
    files
}

fn workflows_folder() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

#[test]
fn every_workflow_file_validates() {
    let catalog = catalog();
    let files = definition_files(&workflows_folder());
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        let definition = load(&source, &catalog)
            .unwrap_or_else(|errors| panic!("{}: {errors:#?}", file.display()));
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(definition.id.as_str(), stem, "{}", file.display());
    }
}

#[test]
fn design_example_validates_with_its_connectors() {
    let connectors = with_actions(
        catalog(),
        &[
            "iconik.search_assets",
            "trading_grid.share_asset",
            "trading_grid.revoke_share",
            "trading_grid.notify_partners",
        ],
    );
    let files = definition_files(&workflows_folder().join("examples"));
    assert!(!files.is_empty());
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        let definition = load(&source, &connectors)
            .unwrap_or_else(|errors| panic!("{}: {errors:#?}", file.display()));
        InputValidator::new(&definition).unwrap();
    }
    let source =
        std::fs::read_to_string(workflows_folder().join("examples/partner-media-request.yaml"))
            .unwrap();
    let errors = load(&source, &catalog()).unwrap_err();
    assert_has(
        &errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "steps[2].action: unknown action \"trading_grid.share_asset\"",
    );
}
