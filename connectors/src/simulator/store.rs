//! A simulator's state, its effect log and its idempotency replies, kept together in one
//! JSON file that is replaced atomically on every change.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SimError;

/// The data a simulator serves: seeded with realistic data when no state file exists yet.
pub trait SimState: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The data of a fresh simulator.
    fn seed() -> Self;
}

/// One state-changing request that took effect, as listed by `GET /_sim/effects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    /// 1, 2, 3… in the order the effects took place.
    pub seq: u64,
    /// When it took place (simulator wall clock, RFC 3339).
    pub at: String,
    /// What it did, in the simulator's words (`post.created`, `metadata.updated`).
    pub action: String,
    /// The request method.
    pub method: String,
    /// The request path, without its query string.
    pub path: String,
    /// The idempotency key the request carried, if any.
    pub idempotency_key: Option<String>,
    /// The id of the object created or changed.
    pub object_id: Option<String>,
}

/// A request that wants to change the state, described for the effect log.
#[derive(Debug, Clone)]
pub struct Change {
    /// What it does (`post.created`).
    pub action: String,
    /// The request method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The idempotency key it carried ([`super::idempotency_key`]).
    pub idempotency_key: Option<String>,
}

impl Change {
    /// A change named `action` made by `method path` with an optional idempotency key.
    pub fn new(
        action: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        idempotency_key: Option<String>,
    ) -> Self {
        Self {
            action: action.into(),
            method: method.into(),
            path: path.into(),
            idempotency_key,
        }
    }
}

/// What a change answered: the status and JSON body, and whether it is the stored reply of
/// an earlier request with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
    /// True when the request was a repeat and nothing changed.
    #[serde(skip)]
    pub replayed: bool,
}

/// The outcome of a change's closure: `Ok((status, body, object id))` takes effect, an
/// `Err((status, body))` leaves the state as it was and records nothing.
pub type ChangeResult = Result<(StatusCode, Value, Option<String>), (StatusCode, Value)>;

#[derive(Clone, Serialize, Deserialize)]
struct Persisted<S> {
    state: S,
    effects: Vec<Effect>,
    /// Replies by idempotency key, with the method and path they answered.
    replies: BTreeMap<String, StoredReply>,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredReply {
    method: String,
    path: String,
    reply: Reply,
}

/// A simulator's state behind one lock, persisted to a JSON file when it has one.
///
/// Every change runs on a copy of the state; the copy replaces the state only once the
/// file holding it has been written (temporary file + rename), so a failed write or a
/// rejected request never leaves a half-applied change behind.
pub struct SimStore<S> {
    path: Option<PathBuf>,
    inner: Mutex<Persisted<S>>,
}

impl<S: SimState> SimStore<S> {
    /// Opens the state file at `path`, or seeds the state (and writes the file) when it does
    /// not exist; `None` keeps the state in memory only.
    pub fn open(path: Option<&Path>) -> Result<Self, SimError> {
        let persisted = match path {
            Some(path) if path.exists() => {
                let text = fs::read_to_string(path).map_err(|source| SimError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                serde_json::from_str(&text).map_err(|source| SimError::Corrupt {
                    path: path.to_owned(),
                    source,
                })?
            }
            _ => {
                let persisted = Persisted {
                    state: S::seed(),
                    effects: Vec::new(),
                    replies: BTreeMap::new(),
                };
                if let Some(path) = path {
                    write_atomically(path, &persisted)?;
                }
                persisted
            }
        };
        Ok(Self {
            path: path.map(Path::to_owned),
            inner: Mutex::new(persisted),
        })
    }

    /// Reads the state.
    pub fn read<R>(&self, read: impl FnOnce(&S) -> R) -> R {
        read(&self.lock().state)
    }

    /// Every effect so far, oldest first.
    pub fn effects(&self) -> Vec<Effect> {
        self.lock().effects.clone()
    }

    /// Applies one state-changing request.
    ///
    /// A request whose idempotency key was seen before gets the stored reply, marked
    /// `replayed`, and changes nothing; the same key on another method or path is refused
    /// with 422. Otherwise `apply` runs on a copy of the state; when it succeeds, the effect
    /// is logged, the reply stored under the key, and everything written to the state file
    /// before the copy becomes the state.
    pub fn change(&self, change: Change, apply: impl FnOnce(&mut S) -> ChangeResult) -> Reply {
        let mut guard = self.lock();
        if let Some(key) = &change.idempotency_key
            && let Some(stored) = guard.replies.get(key)
        {
            if stored.method != change.method || stored.path != change.path {
                return Reply {
                    status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
                    body: serde_json::json!({
                        "message": format!(
                            "idempotency key {key} was used for {} {}",
                            stored.method, stored.path
                        )
                    }),
                    replayed: false,
                };
            }
            let mut reply = stored.reply.clone();
            reply.replayed = true;
            return reply;
        }
        let mut next = guard.clone();
        let (status, body, object_id) = match apply(&mut next.state) {
            Ok(outcome) => outcome,
            Err((status, body)) => {
                return Reply {
                    status: status.as_u16(),
                    body,
                    replayed: false,
                };
            }
        };
        let reply = Reply {
            status: status.as_u16(),
            body,
            replayed: false,
        };
        let seq = next.effects.len() as u64 + 1;
        next.effects.push(Effect {
            seq,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            action: change.action,
            method: change.method.clone(),
            path: change.path.clone(),
            idempotency_key: change.idempotency_key.clone(),
            object_id,
        });
        if let Some(key) = change.idempotency_key {
            next.replies.insert(
                key,
                StoredReply {
                    method: change.method,
                    path: change.path,
                    reply: reply.clone(),
                },
            );
        }
        if let Some(path) = &self.path
            && let Err(error) = write_atomically(path, &next)
        {
            tracing::error!(%error, "simulator state not saved; the change is dropped");
            return Reply {
                status: StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
                body: serde_json::json!({"message": "simulator could not save its state"}),
                replayed: false,
            };
        }
        *guard = next;
        reply
    }

    fn lock(&self) -> MutexGuard<'_, Persisted<S>> {
        // A panic while holding the lock happens before the state is replaced (changes
        // run on a copy), so the data behind a poisoned lock is still whole.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes `value` as JSON next to `path` in a temporary file, syncs it, and renames it over
/// `path`, so a reader (or a restart after a crash) sees the old file or the new one.
fn write_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), SimError> {
    let io_error = |source| SimError::Io {
        path: path.to_owned(),
        source,
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&directory).map_err(io_error)?;
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| SimError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    let mut file = tempfile::NamedTempFile::new_in(&directory).map_err(io_error)?;
    file.write_all(&bytes).map_err(io_error)?;
    file.as_file().sync_all().map_err(io_error)?;
    file.persist(path).map_err(|error| io_error(error.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Serialize, Deserialize)]
    struct Counter {
        value: u32,
    }

    impl SimState for Counter {
        fn seed() -> Self {
            Self { value: 10 }
        }
    }

    fn increment(store: &SimStore<Counter>, key: Option<&str>) -> Reply {
        store.change(
            Change::new(
                "counter.incremented",
                "POST",
                "/count",
                key.map(str::to_owned),
            ),
            |counter| {
                counter.value += 1;
                Ok((
                    StatusCode::CREATED,
                    serde_json::json!({"value": counter.value}),
                    None,
                ))
            },
        )
    }

    #[test]
    fn state_survives_reopen_and_keys_deduplicate() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("sim/state.json");
        let store = SimStore::<Counter>::open(Some(&path)).unwrap();
        assert!(path.exists(), "seeded state is written at once");
        let first = increment(&store, Some("k-1"));
        assert_eq!((first.status, first.replayed), (201, false));
        let again = increment(&store, Some("k-1"));
        assert!(again.replayed);
        assert_eq!(again.body, first.body);
        increment(&store, None);
        drop(store);

        let reopened = SimStore::<Counter>::open(Some(&path)).unwrap();
        assert_eq!(reopened.read(|counter| counter.value), 12);
        assert_eq!(reopened.effects().len(), 2);
        assert!(
            increment(&reopened, Some("k-1")).replayed,
            "keys survive a restart"
        );
    }

    #[test]
    fn rejected_change_leaves_state_and_log_alone() {
        let store = SimStore::<Counter>::open(None).unwrap();
        let reply = store.change(Change::new("x", "POST", "/count", None), |counter| {
            counter.value = 0;
            Err((StatusCode::CONFLICT, serde_json::json!({"message": "no"})))
        });
        assert_eq!(reply.status, 409);
        assert_eq!(store.read(|counter| counter.value), 10);
        assert!(store.effects().is_empty());
    }

    #[test]
    fn key_reused_on_another_path_is_refused() {
        let store = SimStore::<Counter>::open(None).unwrap();
        increment(&store, Some("k"));
        let reply = store.change(Change::new("x", "POST", "/other", Some("k".into())), |_| {
            Ok((StatusCode::OK, Value::Null, None))
        });
        assert_eq!(reply.status, 422);
        assert_eq!(store.effects().len(), 1);
    }

    #[test]
    fn corrupt_state_file_is_reported_with_its_path() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.json");
        fs::write(&path, "{not json").unwrap();
        let error = SimStore::<Counter>::open(Some(&path)).err().unwrap();
        assert!(error.to_string().contains("state.json"), "{error}");
    }
}
