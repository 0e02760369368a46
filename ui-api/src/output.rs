//! Everything the CLI writes for its user: results to stdout, errors to stderr.
//!
//! The workspace warns on `print_stdout` so that library code never prints; the CLI's
//! output is its product, so it is written here, and only here. It goes through
//! `writeln!` on a locked stdout rather than `println!`, which panics when the reader
//! has gone away (`gridflow instances | head -1`); a closed stdout is ignored instead.

use std::fmt::Display;
use std::io::Write;

use serde_json::Value;

/// Writes one line to stdout.
pub fn line(text: impl Display) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (broken pipe) is not an error worth reporting: nobody reads on.
    let _ = writeln!(stdout, "{text}");
}

/// Writes raw bytes to stdout (a streamed export); fails when the reader has gone away.
pub fn bytes(data: &[u8]) -> std::io::Result<()> {
    std::io::stdout().lock().write_all(data)
}

/// Writes a JSON value to stdout, pretty-printed.
pub fn json(value: &Value) {
    line(serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// Writes one line to stderr.
pub fn error_line(text: impl Display) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}

/// An error and its sources as one line, `a: b: c`, leaving out a source whose text the
/// previous message already contains (many errors repeat their source in their message).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut previous = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !previous.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        previous = message;
        source = cause.source();
    }
    text
}

/// Writes a page of instances as a table, then the cursor of the next page, if any.
pub fn instance_table(items: &[Value], next_cursor: Option<&str>) {
    const HEADERS: [&str; 5] = ["ID", "DEFINITION", "VERSION", "STATUS", "CREATED"];
    let text = |item: &Value, key: &str| match item.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let rows: Vec<[String; 5]> = items
        .iter()
        .map(|item| {
            [
                text(item, "id"),
                text(item, "definition"),
                text(item, "version"),
                text(item, "status"),
                text(item, "created_at"),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let format_row = |cells: [&str; 5]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    line(format_row(HEADERS));
    for row in &rows {
        line(format_row(row.each_ref().map(String::as_str)));
    }
    if let Some(cursor) = next_cursor {
        line(format!("next page: --cursor {cursor}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: String,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(message: &str, source: Option<Layer>) -> Layer {
        Layer {
            message: message.to_owned(),
            source: source.map(Box::new),
        }
    }

    #[test]
    fn error_chain_skips_repeated_sources() {
        let error = layer(
            "cannot open the database: unable to open database file",
            Some(layer(
                "unable to open database file",
                Some(layer("permission denied", None)),
            )),
        );
        assert_eq!(
            error_chain(&error),
            "cannot open the database: unable to open database file: permission denied"
        );
    }
}
