//! Idempotent starts: `POST /definitions/{id}/instances` with an `Idempotency-Key`.
//!
//! The instance id is derived from the definition, the calling user and the key
//! ([`idempotent_instance_id`]), as a change delivered by a poller names its instance
//! (`Engine::deliver_change`). A retry with the same key names the same instance, so the
//! instance row's primary key makes the start happen at most once, in the same
//! transaction as the start itself, with no table of keys to keep or expire: a key is
//! remembered as long as its instance exists.
//!
//! On one node, starts with the same derived id run one at a time (`start_locks`): the
//! second finds the first in the store and answers it. Across nodes (PostgreSQL), two
//! concurrent starts with one key meet at the primary key: the later batch fails as
//! unavailable, its caller retries and then finds the instance.

use serde_json::Value;
use sha2::{Digest, Sha256};

use gridflow_core::{DefinitionId, InstanceId};
use gridflow_store::InstanceRecord;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// What an idempotent start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The instance the key names.
    pub instance: InstanceId,
    /// Whether this call started it (`false`: an earlier call with the key did).
    pub created: bool,
}

/// The instance id of a start by `user` of `definition` with idempotency `key`.
///
/// A UUID (version 8, custom) from the SHA-256 of the three. When the key is itself a
/// UUIDv7 (the CLI sends one), its 48-bit millisecond timestamp is kept as the id's first
/// 48 bits, so such instances sort by start time among the UUIDv7 ids of other starts
/// (lists are newest first by id).
pub fn idempotent_instance_id(definition: &DefinitionId, user: &str, key: &str) -> InstanceId {
    let mut hasher = Sha256::new();
    for part in ["gridflow idempotent start", definition.as_str(), user, key] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    if let Ok(key) = uuid::Uuid::parse_str(key)
        && key.get_version_num() == 7
    {
        bytes[..6].copy_from_slice(&key.as_bytes()[..6]);
    }
    InstanceId::from(
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string(),
    )
}

impl Engine {
    /// Starts an instance at most once per `(definition, actor, key)`: the first call
    /// starts it (`created`), later ones answer the same instance and start nothing.
    /// A later call whose input or version differs from the first one's is refused with
    /// `Conflict` naming the key.
    pub async fn start_instance_idempotent(
        &self,
        definition: &DefinitionId,
        version: Option<u32>,
        input: Value,
        actor: &str,
        key: &str,
    ) -> Result<Started> {
        let instance = idempotent_instance_id(definition, actor, key);
        let _guard = self.shared.start_locks.lock(&instance).await;
        match self.shared.store.instance(&instance).await {
            Ok(record) => return same_request(&record, version, &input, key),
            Err(gridflow_store::Error::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        let compared = input.clone();
        match self
            .start_instance_as(instance.clone(), definition, version, input, actor)
            .await
        {
            Ok(()) => {
                tracing::info!(%instance, definition = %definition, "instance started with an idempotency key");
                Ok(Started {
                    instance,
                    created: true,
                })
            }
            // Started meanwhile by another node with this key.
            Err(Error::Conflict(_)) => match self.shared.store.instance(&instance).await {
                Ok(record) => same_request(&record, version, &compared, key),
                Err(gridflow_store::Error::NotFound(_)) => Err(Error::Unavailable(format!(
                    "instance {instance} is being started with idempotency key {key:?}; retry"
                ))),
                Err(error) => Err(error.into()),
            },
            Err(error) => Err(error),
        }
    }
}

/// The answer to a start whose key already names `record`: the instance, if the request
/// is the one that started it (same input; same version, when one is given).
fn same_request(
    record: &InstanceRecord,
    version: Option<u32>,
    input: &Value,
    key: &str,
) -> Result<Started> {
    let differs = if record.input != *input {
        Some("another input".to_owned())
    } else {
        version
            .filter(|version| *version != record.definition_version)
            .map(|_| format!("version {}", record.definition_version))
    };
    match differs {
        None => Ok(Started {
            instance: record.id.clone(),
            created: false,
        }),
        Some(difference) => Err(Error::Conflict(format!(
            "idempotency key {key:?} was already used to start instance {} of {} with {difference}; \
             send a new key for a new start",
            record.id, record.definition_id
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_depends_on_definition_user_and_key() {
        let definition = DefinitionId::from("hello");
        let id = idempotent_instance_id(&definition, "ana", "k-1");
        assert_eq!(id, idempotent_instance_id(&definition, "ana", "k-1"));
        assert_ne!(id, idempotent_instance_id(&definition, "ana", "k-2"));
        assert_ne!(id, idempotent_instance_id(&definition, "bob", "k-1"));
        assert_ne!(
            id,
            idempotent_instance_id(&DefinitionId::from("other"), "ana", "k-1")
        );
        let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
    }

    #[test]
    fn a_uuidv7_key_keeps_its_time_so_ids_sort_by_start() {
        let definition = DefinitionId::from("hello");
        let earlier = uuid::Uuid::parse_str("019af000-0000-7000-8000-000000000001").unwrap();
        let later = uuid::Uuid::parse_str("019af000-0001-7000-8000-000000000000").unwrap();
        let first = idempotent_instance_id(&definition, "ana", &earlier.to_string());
        let second = idempotent_instance_id(&definition, "ana", &later.to_string());
        assert!(first.as_str().starts_with("019af000-0000-8"), "{first}");
        assert!(second.as_str().starts_with("019af000-0001-8"), "{second}");
        assert!(first < second);
    }
}
