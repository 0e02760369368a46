//! The `${...}` pieces of a template string, found without parsing CEL.

/// A piece of a template string: literal text or the source of one `${...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece<'a> {
    Text(&'a str),
    Expression(&'a str),
}

/// Whether `text` holds a `${` and so is a template rather than plain text.
pub fn is_template(text: &str) -> bool {
    text.contains("${")
}

/// The sources inside each `${...}` of `text`, in order.
///
/// A `}` inside a CEL string literal or closing a CEL map literal does not end the
/// expression. An unclosed `${` or an empty `${}` is an error.
pub fn expressions(text: &str) -> Result<Vec<String>, String> {
    Ok(split(text)?
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Expression(source) => Some(source.to_owned()),
            Piece::Text(_) => None,
        })
        .collect())
}

/// The source inside the braces when `text` is exactly one `${...}` and nothing else:
/// the form that [`render`](super::render) turns into a typed value.
pub fn single_expression(text: &str) -> Option<&str> {
    match split(text).ok()?.as_slice() {
        [Piece::Expression(source)] => Some(source),
        _ => None,
    }
}

/// Splits a template string into text and the sources of its `${...}`.
pub(super) fn split(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("${") {
        let body = &rest[start + 2..];
        // `${secrets.NAME}` is text: the action resolves it when it runs.
        if let Some(name) = crate::secret_ref::reference_name(body) {
            let length = start + crate::secret_ref::reference_length(name);
            pieces.push(Piece::Text(&rest[..length]));
            offset += length;
            rest = &rest[length..];
            continue;
        }
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        let Some(length) = expression_length(body) else {
            return Err(format!(
                "unclosed \"${{\" at character {} of {text:?}: add the closing \"}}\" (and close any quote inside)",
                offset + start + 1
            ));
        };
        if body[..length].trim().is_empty() {
            return Err(format!(
                "empty expression \"${{}}\" in {text:?}: write a CEL expression inside"
            ));
        }
        pieces.push(Piece::Expression(&body[..length]));
        let consumed = start + 2 + length + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// The byte length of the CEL source at the start of `body`, up to (not including) the `}`
/// that closes the `${`; `None` when it is never closed.
///
/// Skips CEL string literals (`'...'`, `"..."`, triple-quoted and raw forms) and balances
/// braces, so that `${ {'a': '}'}['a'] }` ends at the last brace.
fn expression_length(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(index),
            b'}' => depth -= 1,
            quote @ (b'\'' | b'"') => {
                let raw = index > 0 && matches!(bytes[index - 1], b'r' | b'R')
                    || index > 1
                        && matches!(bytes[index - 1], b'b' | b'B')
                        && matches!(bytes[index - 2], b'r' | b'R');
                let triple =
                    bytes.get(index + 1) == Some(&quote) && bytes.get(index + 2) == Some(&quote);
                index = string_end(bytes, index, quote, triple, raw)?;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// The index just past the string literal opening at `start`, or `None` if it never closes.
fn string_end(bytes: &[u8], start: usize, quote: u8, triple: bool, raw: bool) -> Option<usize> {
    let mut index = start + if triple { 3 } else { 1 };
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'\\' && !raw {
            index += 2;
            continue;
        }
        if byte == quote {
            if !triple {
                return Some(index + 1);
            }
            if bytes.get(index + 1) == Some(&quote) && bytes.get(index + 2) == Some(&quote) {
                return Some(index + 3);
            }
        }
        if byte == b'\n' && !triple {
            return None;
        }
        index += 1;
    }
    None
}
