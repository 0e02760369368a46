//! `[content]`: the content-addressed store of fetched bytes.
//!
//! ```toml
//! [content]
//! dir = "/var/lib/gridflow/content"   # default: `gridflow-content` next to the SQLite file
//! max_bytes = 1073741824              # larger objects are refused (content_too_large)
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use crate::content::{ContentStore, DEFAULT_MAX_BYTES};

/// The folder's name when `dir` is unset: next to the SQLite file, or in the working
/// directory on PostgreSQL.
pub const DEFAULT_DIR_NAME: &str = "gridflow-content";

/// `[content]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentConfig {
    /// Where objects are kept; unset: [`DEFAULT_DIR_NAME`], which the server places next to
    /// the database.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The largest object accepted, in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

impl Default for ContentConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}

impl ContentConfig {
    /// The store this section describes.
    pub fn store(&self) -> ContentStore {
        ContentStore::new(
            self.dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR_NAME)),
            self.max_bytes,
        )
    }

    pub(super) fn check(&self) -> Result<(), (String, String)> {
        if self.max_bytes == 0 {
            return Err((
                "content.max_bytes".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}
