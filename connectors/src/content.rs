//! Content by digest: the bytes a DAM connector fetches are kept in a content-addressed
//! store under their SHA-256, and actions pass [`ContentRef`]s (digest, size, type, file
//! name) or [`Artifact`]s (a reference with the asset and version it came from), never
//! bytes or expiring links. History therefore holds digests only.
//!
//! The store is a folder (`[content] dir` in `gridflow.toml`, by default next to the
//! database): `<dir>/sha256/<first two hex digits>/<the other 62>`. Writes go to a
//! temporary file in `<dir>/tmp/`, are hashed as they stream, synced and then renamed to
//! their digest, so a reader never sees a partial object and a second write of the same
//! bytes is harmless. Reads check the digest again, so bytes changed on disk are
//! refused rather than delivered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::connector::{Error, Result};

/// The default of `[content] max_bytes`: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// A stored content object: what actions pass instead of bytes or links.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContentRef {
    /// The SHA-256 of the bytes, 64 lower-case hex digits.
    pub sha256: String,
    /// The length in bytes.
    pub size: u64,
    /// The MIME type the source gave (`image/jpeg`), `application/octet-stream` if none.
    pub content_type: String,
    /// The file name the source gave.
    pub file_name: String,
}

impl ContentRef {
    /// The JSON Schema of a reference in action arguments and outputs.
    pub fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["sha256", "size", "content_type", "file_name"],
            "properties": Self::properties(),
            "additionalProperties": false
        })
    }

    fn properties() -> Value {
        json!({
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer", "minimum": 0},
            "content_type": {"type": "string"},
            "file_name": {"type": "string"}
        })
    }
}

/// A stored content object with the asset version it is: what a fetch reports, what an
/// approval binds and what a delivery delivers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Artifact {
    /// The system the asset lives in (`otmm`, `iconik`, `canto`, `smintio`).
    pub system: String,
    /// The asset's id in that system.
    pub asset_id: String,
    /// The version, as the system numbers or names it.
    pub version: String,
    /// The bytes.
    #[serde(flatten)]
    pub content: ContentRef,
}

impl Artifact {
    /// The JSON Schema of an artifact in action arguments and outputs.
    pub fn schema() -> Value {
        let mut properties = ContentRef::properties();
        properties["system"] = json!({"type": "string"});
        properties["asset_id"] = json!({"type": "string"});
        properties["version"] = json!({"type": "string"});
        json!({
            "type": "object",
            "required": ["system", "asset_id", "version", "sha256", "size", "content_type", "file_name"],
            "properties": properties,
            "additionalProperties": false
        })
    }

    /// Whether `self` and `other` are the same bytes of the same asset version.
    pub fn same_as(&self, other: &Artifact) -> bool {
        self.system == other.system
            && self.asset_id == other.asset_id
            && self.version == other.version
            && self.content.sha256 == other.content.sha256
    }
}

/// The content-addressed store. Cheap to clone; every clone is the same folder.
#[derive(Debug, Clone)]
pub struct ContentStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
}

impl ContentStore {
    /// A store in `dir` (created on first write) that refuses objects over `max_bytes`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: dir.into(),
                max_bytes,
            }),
        }
    }

    /// A store in the system's temporary folder: what a connector built without
    /// [`crate::config::ContentConfig`] uses until it is given one.
    pub fn scratch() -> Self {
        Self::new(
            std::env::temp_dir().join("gridflow-content"),
            DEFAULT_MAX_BYTES,
        )
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The largest object accepted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// Where the object with digest `sha256` is (or would be) kept; `None` when `sha256`
    /// is not 64 lower-case hex digits.
    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        let valid = sha256.len() == 64
            && sha256
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        valid.then(|| {
            self.inner
                .dir
                .join("sha256")
                .join(&sha256[..2])
                .join(&sha256[2..])
        })
    }

    /// Whether the object with digest `sha256` is in the store.
    pub async fn contains(&self, sha256: &str) -> bool {
        match self.path_of(sha256) {
            Some(path) => tokio::fs::try_exists(path).await.unwrap_or(false),
            None => false,
        }
    }

    /// Starts writing an object: feed it chunks with [`ContentWriter::write`], then
    /// [`ContentWriter::finish`].
    pub async fn writer(&self) -> Result<ContentWriter> {
        let tmp = self.inner.dir.join("tmp");
        tokio::fs::create_dir_all(&tmp)
            .await
            .map_err(|error| io_error("create the content folder", &tmp, &error))?;
        let file = tempfile::NamedTempFile::new_in(&tmp)
            .map_err(|error| io_error("create a file in", &tmp, &error))?;
        let (file, path) = file.into_parts();
        Ok(ContentWriter {
            store: self.clone(),
            file: tokio::fs::File::from_std(file),
            path: Some(path),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Stores `bytes` at once (small objects, tests and simulators).
    pub async fn put(
        &self,
        bytes: &[u8],
        content_type: &str,
        file_name: &str,
    ) -> Result<ContentRef> {
        let mut writer = self.writer().await?;
        writer.write(bytes).await?;
        writer.finish(content_type, file_name).await
    }

    /// The bytes of `reference`, checked against its digest and size: a missing object is
    /// the permanent error `content_not_found`, bytes that no longer match their digest
    /// `content_corrupt`.
    pub async fn read(&self, reference: &ContentRef) -> Result<Vec<u8>> {
        let path = self.path_of(&reference.sha256).ok_or_else(|| {
            Error::permanent(
                "invalid_content_ref",
                format!("{:?} is not a SHA-256 digest", reference.sha256),
            )
        })?;
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::permanent(
                    "content_not_found",
                    format!(
                        "content {} ({}) is not in the content store",
                        reference.sha256, reference.file_name
                    ),
                ));
            }
            Err(error) => return Err(io_error("read", &path, &error)),
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != reference.sha256 || bytes.len() as u64 != reference.size {
            return Err(Error::permanent(
                "content_corrupt",
                format!(
                    "content {} ({}) in the store has changed: its bytes hash to {actual}, {} bytes",
                    reference.sha256,
                    reference.file_name,
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }
}

/// An object being written; dropped unfinished, its temporary file is removed.
pub struct ContentWriter {
    store: ContentStore,
    file: tokio::fs::File,
    path: Option<tempfile::TempPath>,
    hasher: Sha256,
    size: u64,
}

impl ContentWriter {
    /// Appends `chunk`; refuses with the permanent error `content_too_large` once the
    /// object would exceed the store's `max_bytes`.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.store.max_bytes() {
            return Err(Error::permanent(
                "content_too_large",
                format!(
                    "content is larger than the {} bytes [content] max_bytes allows",
                    self.store.max_bytes()
                ),
            ));
        }
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .await
            .map_err(|error| io_error("write", self.store.dir(), &error))
    }

    /// Syncs the object and files it under its digest.
    pub async fn finish(mut self, content_type: &str, file_name: &str) -> Result<ContentRef> {
        let dir = self.store.dir().to_owned();
        self.file
            .sync_all()
            .await
            .map_err(|error| io_error("sync", &dir, &error))?;
        let sha256 = hex::encode(self.hasher.finalize_reset());
        let target = self
            .store
            .path_of(&sha256)
            .expect("a SHA-256 digest in hex is a valid name");
        let parent = target.parent().expect("objects sit in a folder");
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|error| io_error("create", parent, &error))?;
        let path = self.path.take().expect("finish runs once");
        path.persist(&target)
            .map_err(|error| io_error("file the object as", &target, &error.error))?;
        Ok(ContentRef {
            sha256,
            size: self.size,
            content_type: if content_type.is_empty() {
                "application/octet-stream".to_owned()
            } else {
                content_type.to_owned()
            },
            file_name: file_name.to_owned(),
        })
    }
}

fn io_error(what: &str, path: &Path, error: &std::io::Error) -> Error {
    Error::retryable(
        "content_store_unavailable",
        format!("content store: cannot {what} {}: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_by_digest_and_reads_back_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path(), 1024);
        let reference = store
            .put(b"hello", "text/plain", "hello.txt")
            .await
            .unwrap();
        assert_eq!(
            reference.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(reference.size, 5);
        assert!(store.contains(&reference.sha256).await);
        assert_eq!(store.read(&reference).await.unwrap(), b"hello");
        let again = store
            .put(b"hello", "text/plain", "other.txt")
            .await
            .unwrap();
        assert_eq!(again.sha256, reference.sha256, "same bytes, same object");

        std::fs::write(store.path_of(&reference.sha256).unwrap(), b"HELLO").unwrap();
        let error = store.read(&reference).await.unwrap_err();
        assert_eq!(error.code(), "content_corrupt");
    }

    #[tokio::test]
    async fn refuses_objects_over_the_limit_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path(), 4);
        let error = store
            .put(b"hello", "text/plain", "h.txt")
            .await
            .unwrap_err();
        assert_eq!(error.code(), "content_too_large");
        assert!(!error.is_retryable());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
        assert!(left.is_empty(), "the partial object is removed: {left:?}");
        let missing = ContentRef {
            sha256: "0".repeat(64),
            size: 1,
            content_type: "x".into(),
            file_name: "x".into(),
        };
        assert_eq!(
            store.read(&missing).await.unwrap_err().code(),
            "content_not_found"
        );
    }
}
