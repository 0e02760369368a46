//! Conformance of the token lifecycle: ids, expiry, revocation and the server run of demo
//! tokens read back equal on every backend; revocation is idempotent.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use gridflow_store::{Error, Store, TokenRecord};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_763_900_000 + seconds, 0).unwrap()
}

fn token(id: &str, hash_digit: char, created: i64) -> TokenRecord {
    TokenRecord {
        id: id.to_owned(),
        hash: hash_digit.to_string().repeat(64),
        user: format!("user-{id}"),
        role: "analyst".to_owned(),
        groups: vec!["g".to_owned()],
        created_at: at(created) + chrono::Duration::microseconds(250),
        created_by: "admin".to_owned(),
        expires_at: Some(at(created + 3600)),
        revoked_at: None,
        server_run: None,
    }
}

pub(crate) async fn tokens_are_listed_oldest_first_with_their_lifecycle(store: Arc<dyn Store>) {
    assert!(store.list_tokens().await.unwrap().is_empty());
    let later = token("t-later", 'a', 20);
    let legacy = TokenRecord {
        expires_at: None,
        ..token("t-legacy", 'b', 5)
    };
    let demo = TokenRecord {
        server_run: Some("run-1".to_owned()),
        ..token("t-demo", 'c', 10)
    };
    for record in [&later, &legacy, &demo] {
        store.create_token(record).await.unwrap();
    }
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed, vec![legacy, demo.clone(), later]);
    assert_eq!(store.token_by_hash(&demo.hash).await.unwrap(), Some(demo));
}

pub(crate) async fn revoking_a_token_keeps_its_first_instant(store: Arc<dyn Store>) {
    let record = token("t-1", 'd', 0);
    let other = token("t-2", 'e', 1);
    store.create_token(&record).await.unwrap();
    store.create_token(&other).await.unwrap();

    let (revoked, newly) = store.revoke_token("t-1", at(100)).await.unwrap();
    assert!(newly);
    assert_eq!(revoked.revoked_at, Some(at(100)));
    assert_eq!(
        revoked,
        TokenRecord {
            revoked_at: Some(at(100)),
            ..record.clone()
        }
    );
    // Revoking again changes nothing.
    let (again, newly) = store.revoke_token("t-1", at(200)).await.unwrap();
    assert!(!newly);
    assert_eq!(again.revoked_at, Some(at(100)));
    assert_eq!(
        store.token_by_hash(&record.hash).await.unwrap(),
        Some(again)
    );
    // The other token is untouched.
    assert_eq!(store.token_by_hash(&other.hash).await.unwrap(), Some(other));
    match store.revoke_token("t-none", at(100)).await {
        Err(Error::NotFound(message)) => assert!(message.contains("t-none"), "{message}"),
        other => panic!("expected not found, got {other:?}"),
    }
}

pub(crate) async fn duplicate_token_id_conflicts(store: Arc<dyn Store>) {
    let first = token("same", 'f', 0);
    store.create_token(&first).await.unwrap();
    let second = token("same", '0', 1);
    assert!(matches!(
        store.create_token(&second).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(store.list_tokens().await.unwrap(), vec![first]);
}
