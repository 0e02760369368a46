//! `${secrets.NAME}`: a reference to a secret inside a step's `with` (DESIGN.md §7,
//! `core.http`).
//!
//! Templates leave a reference as it is written: it is text, not an expression, so the
//! arguments recorded in history keep `${secrets.NAME}` and never the secret. The action
//! that accepts references resolves them when it runs (`core.http` reads the environment
//! variable `GRIDFLOW_SECRET_<NAME>`). Only this exact form is a reference: `secrets.`
//! followed by a name of ASCII letters, digits and `_` that starts with a letter, with no
//! spaces, directly inside `${` and `}`.

/// What follows `${` in a reference.
const PREFIX: &str = "secrets.";

/// The longest secret name.
const MAX_NAME_LENGTH: usize = 128;

/// The name of the reference at the start of `body`, the text right after a `${`, if it
/// is `secrets.NAME}`; the reference is `PREFIX.len() + name.len() + 1` bytes of `body`.
pub fn reference_name(body: &str) -> Option<&str> {
    let rest = body.strip_prefix(PREFIX)?;
    let end = rest.find('}')?;
    let name = &rest[..end];
    is_valid_name(name).then_some(name)
}

/// The byte length of a reference to `name`, from its `${` to its `}` inclusive.
pub fn reference_length(name: &str) -> usize {
    2 + PREFIX.len() + name.len() + 1
}

/// Whether `name` can be a secret's name.
pub fn is_valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LENGTH
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` with each `${secrets.NAME}` replaced by `resolve(NAME)`; the first error of
/// `resolve` is returned as it is.
pub fn replace_references<E>(
    text: &str,
    mut resolve: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let body = &rest[start + 2..];
        match reference_name(body) {
            Some(name) => {
                out.push_str(&resolve(name)?);
                rest = &rest[start + reference_length(name)..];
            }
            None => {
                out.push_str("${");
                rest = body;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_form_is_a_reference() {
        assert_eq!(reference_name("secrets.API_KEY} rest"), Some("API_KEY"));
        assert_eq!(reference_name("secrets.api2}"), Some("api2"));
        for body in [
            "secrets. API}",
            "secrets.1A}",
            "secrets.}",
            "secrets.A-B}",
            "secrets.A",
            " secrets.A}",
            "input.x}",
        ] {
            assert_eq!(reference_name(body), None, "{body}");
        }
    }

    #[test]
    fn references_are_replaced_and_other_text_kept() {
        let replaced =
            replace_references("Bearer ${secrets.TOKEN}; ${input.x} ${secrets.B}", |name| {
                Ok::<_, ()>(format!("<{name}>"))
            });
        assert_eq!(replaced, Ok("Bearer <TOKEN>; ${input.x} <B>".to_owned()));
        let failed = replace_references("${secrets.MISSING}", |name| Err(name.to_owned()));
        assert_eq!(failed, Err("MISSING".to_owned()));
    }

    #[test]
    fn rendering_keeps_references_as_text_and_validation_accepts_them() {
        use serde_json::json;
        let scope = crate::expr::Scope::new().with("input", json!({"id": 7}));
        let template = json!({
            "url": "https://api.example.com/${input.id}?key=${secrets.API_KEY}",
            "headers": {"Authorization": "${secrets.TOKEN}"}
        });
        assert_eq!(
            crate::expr::render(&template, &scope),
            Ok(json!({
                "url": "https://api.example.com/7?key=${secrets.API_KEY}",
                "headers": {"Authorization": "${secrets.TOKEN}"}
            }))
        );
        assert_eq!(crate::expr::check("Bearer ${secrets.TOKEN}"), Ok(()));
        assert_eq!(crate::expr::expressions("${secrets.TOKEN}"), Ok(vec![]));
    }
}
