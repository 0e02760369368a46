//! `[limits]` of `gridflow.toml`: defaults, overrides, and errors naming the key.

use gridflow_connectors::config::Config;
use gridflow_core::limits::Limits;

#[test]
fn limits_default_when_the_section_is_absent() {
    let config = Config::parse("", "gridflow.toml").unwrap();
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.limits.max_signal_bytes.get(), 1024 * 1024);
    assert_eq!(config.limits.max_pending_signals.get(), 100);
    assert_eq!(
        config.limits.max_pending_signal_bytes.get(),
        4 * 1024 * 1024
    );
    assert_eq!(config.limits.max_output_bytes.get(), 1024 * 1024);
    assert_eq!(config.limits.max_page_size.get(), 500);
}

#[test]
fn run_limits_are_read_from_the_section() {
    let text = "[limits]\nmax_signal_bytes = 2048\nmax_pending_signals = 3\n\
                max_pending_signal_bytes = 4096\nmax_output_bytes = 100\nmax_page_size = 20\n";
    let limits = Config::parse(text, "gridflow.toml").unwrap().limits;
    assert_eq!(limits.max_signal_bytes.get(), 2048);
    assert_eq!(limits.max_pending_signals.get(), 3);
    assert_eq!(limits.max_pending_signal_bytes.get(), 4096);
    assert_eq!(limits.max_output_bytes.get(), 100);
    assert_eq!(limits.max_page_size.get(), 20);
}

#[test]
fn bad_run_limits_are_named_with_the_file_and_key() {
    for (text, key) in [
        ("[limits]\nmax_page_size = 0\n", "limits.max_page_size"),
        (
            "[limits]\nmax_signal_bytes = -1\n",
            "limits.max_signal_bytes",
        ),
        (
            "[limits]\nmax_output_bytes = \"1MB\"\n",
            "limits.max_output_bytes",
        ),
        ("[limits]\nmax_pending_signal = 3\n", "limits"),
    ] {
        let error = Config::parse(text, "gridflow.toml")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("gridflow.toml: {key}")),
            "{text:?}: {error}"
        );
    }
}
