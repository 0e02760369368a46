//! Access tokens issued by a simulator: random, held in memory (a restart invalidates
//! them, as a real system's sessions may be), expirable on demand, and listed (expired ones
//! too) so that a test can look for their exact values where they must never appear.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, header};

/// The tokens one simulator has issued and still accepts.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    inner: Arc<Mutex<Issued>>,
}

#[derive(Debug, Default)]
struct Issued {
    valid: BTreeSet<String>,
    /// Every token issued since the start, in order, expired ones included.
    all: Vec<String>,
}

impl Tokens {
    /// Issues a new random token.
    pub fn issue(&self) -> String {
        let token = format!("sim-{}", hex_encode(&rand::random::<[u8; 24]>()));
        let mut issued = self.lock();
        issued.valid.insert(token.clone());
        issued.all.push(token.clone());
        token
    }

    /// Whether `token` was issued and has not expired.
    pub fn is_valid(&self, token: &str) -> bool {
        self.lock().valid.contains(token)
    }

    /// Whether the request carries `Authorization: Bearer <valid token>`.
    pub fn check_bearer(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|token| self.is_valid(token.trim()))
    }

    /// Every issued token stops working.
    pub fn expire_all(&self) {
        self.lock().valid.clear();
    }

    /// How many tokens were issued since the simulator started.
    pub fn issued_count(&self) -> u64 {
        self.lock().all.len() as u64
    }

    /// Every token issued since the simulator started, in order, expired ones included.
    pub fn issued(&self) -> Vec<String> {
        self.lock().all.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Issued> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
