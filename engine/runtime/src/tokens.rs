//! API tokens on the engine handle: stored (as hashes, never as text), looked up, listed
//! and revoked. They pass through to the store; the API decides what a token means, and
//! the audit log records who created or revoked one (`audit`).

use gridflow_store::TokenRecord;

use crate::engine::Engine;
use crate::error::Result;

impl Engine {
    /// Stores a new API token (its hash, never its text).
    pub async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        Ok(self.shared.store.create_token(token).await?)
    }

    /// The stored token whose text hashes to `hash`, if any.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        Ok(self.shared.store.token_by_hash(hash).await?)
    }

    /// Every stored token, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        Ok(self.shared.store.list_tokens().await?)
    }

    /// Revokes the token `id` now (an earlier revocation stands); returns it as stored and
    /// whether this call revoked it.
    pub async fn revoke_token(&self, id: &str) -> Result<(TokenRecord, bool)> {
        let now = self.shared.clock.now();
        Ok(self.shared.store.revoke_token(id, now).await?)
    }
}
