//! What the `fetch_content` actions share: the arguments iconik's and OTMM's take (the
//! asset, a version named by number or text, the rendition), Canto's and Smintio's
//! version argument as text, the error for a version that is not there, and the output
//! of every one (the stored [`Artifact`] and the asset's rights window as the system
//! gives it).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::asset::RightsWindow;
use crate::connector::{Error, Result};
use crate::content::{Artifact, ContentRef};
use crate::effects::ObservedRights;

/// The rendition fetched when none is named: the original (master) file.
pub(crate) const ORIGINAL: &str = "original";

/// The arguments of a `fetch_content` that names a version by number or text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FetchArgs {
    /// The asset.
    pub(crate) asset_id: String,
    /// The version; the system's current one when none is named.
    pub(crate) version: Option<VersionArg>,
    /// The rendition, [`ORIGINAL`] unless named.
    #[serde(default = "original")]
    pub(crate) rendition: String,
}

fn original() -> String {
    ORIGINAL.to_owned()
}

/// A version as an action names it: its number, or text (the system's id of the version,
/// or where the system allows it, its number as text).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum VersionArg {
    /// The version's number, 1 for the first.
    Number(u64),
    /// The version's id (or number) as text.
    Text(String),
}

impl VersionArg {
    /// The permanent `version_not_found` error of `what` (`iconik asset a1`), which has no
    /// version `wanted`; `current` names the version looked for when none was named.
    pub(crate) fn not_found(wanted: Option<&VersionArg>, what: &str, current: &str) -> Error {
        let wanted = match wanted {
            Some(VersionArg::Number(number)) => number.to_string(),
            Some(VersionArg::Text(text)) => text.clone(),
            None => current.to_owned(),
        };
        Error::permanent(
            "version_not_found",
            format!("{what} has no version {wanted}"),
        )
    }
}

/// A `version` argument of `action` (`canto.fetch_content`) that names a version as text
/// or a number (`"2"` or `2`), as text; none when it is absent or `null`.
pub(crate) fn version_text(action: &str, version: Option<&Value>) -> Result<Option<String>> {
    match version {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => Err(Error::invalid_arguments(format!(
            "{action}: version must be a string or an integer, not {other}"
        ))),
    }
}

/// The output of `fetch_content`: `content`, filed as `version` of `system`'s asset
/// `asset_id`, and the asset's rights `window`.
pub(crate) fn output(
    system: &str,
    asset_id: String,
    version: String,
    content: ContentRef,
    window: RightsWindow,
) -> Value {
    let rights = ObservedRights {
        system: system.to_owned(),
        asset_id: asset_id.clone(),
        window,
    };
    let artifact = Artifact {
        system: system.to_owned(),
        asset_id,
        version,
        content,
    };
    json!({"content": artifact, "observed_rights": [rights]})
}
