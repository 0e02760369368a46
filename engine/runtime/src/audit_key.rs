//! The server's audit signing key and the audit part of the engine's shared state.
//!
//! The key never appears in logs or `Debug` output. A server keeps it in a file readable
//! by its own user only ([`AuditKey::load_or_create`]); tests use a key held in memory.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use gridflow_core::audit::checkpoint::PublicKey;
use gridflow_core::audit::{Checkpoint, CheckpointBody};

use crate::error::{Error, Result};

/// The server's Ed25519 signing key. Its `Debug` output shows only the public key.
#[derive(Clone)]
pub struct AuditKey(SigningKey);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey")
            .field("public_key", &self.public_key().to_string())
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// A new random key, kept in memory only (tests; a server loads its key from a file).
    pub fn generate() -> Self {
        Self(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// The key whose secret is `bytes`.
    pub fn from_secret(bytes: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&bytes))
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Reads the key at `path`, or creates it there (mode 0600, 64 hex characters) when no
    /// file exists. Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool)> {
        let shown = path.display();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes: [u8; 32] = hex::decode(text.trim())
                    .ok()
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| {
                        Error::Invalid {
                            message: format!(
                                "audit key file {shown}: expected 64 hex characters (an Ed25519 secret key)"
                            ),
                            details: Vec::new(),
                        }
                    })?;
                warn_if_readable_by_others(path);
                Ok((Self::from_secret(bytes), false))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(path, &format!("{}\n", hex::encode(key.0.to_bytes()))).map_err(
                    |error| {
                        Error::Unavailable(format!("cannot create audit key file {shown}: {error}"))
                    },
                )?;
                Ok((key, true))
            }
            Err(error) => Err(Error::Unavailable(format!(
                "cannot read audit key file {shown}: {error}"
            ))),
        }
    }

    pub(crate) fn sign(&self, body: CheckpointBody) -> Checkpoint {
        body.sign(&self.0)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the audit key file is readable by other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The audit part of the engine's shared state.
pub(crate) struct AuditState {
    pub(crate) key: AuditKey,
    pub(crate) interval: Option<Duration>,
    /// One checkpoint at a time from this node (another node's race is a store Conflict).
    pub(crate) checkpointing: tokio::sync::Mutex<()>,
}
