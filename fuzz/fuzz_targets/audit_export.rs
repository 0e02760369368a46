//! The offline export verifier (`gridflow audit verify --file`): any bytes, split into
//! lines as the CLI does, never panic; a report is not ok unless it has no problems.
#![no_main]

use gridflow_core::audit::export::ExportVerifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut verifier = ExportVerifier::new(None);
    for line in data.split(|byte| *byte == b'\n') {
        if !line.is_empty() {
            verifier.line(line);
        }
    }
    let report = verifier.finish();
    assert_eq!(report.ok, report.problems.is_empty(), "{report:?}");
});
