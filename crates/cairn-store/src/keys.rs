//! People's API keys (see `cairn_core::keys`).

use async_trait::async_trait;
use cairn_core::keys::{ApiKeyRecord, Role};

use crate::StoreError;

/// KeyStore: see the module documentation.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key.
    async fn create_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;

    /// One key by id, revoked or not.
    async fn get_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Every key, newest first.
    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Revokes a key; false when there is none by that id or it already was.
    async fn revoke_key(&self, id: &str, at: i64) -> Result<bool, StoreError>;
}

/// A key's stored columns.
pub(crate) type KeyCols = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
);

/// A key from its columns.
pub(crate) fn decode_key(c: KeyCols) -> Result<ApiKeyRecord, StoreError> {
    let (id, user_id, role, agent, secret_sha256, created_at, revoked_at) = c;
    let role: Role = role
        .parse()
        .map_err(|e| StoreError::corrupt("api_keys", e))?;
    Ok(ApiKeyRecord {
        id,
        user_id,
        role,
        agent,
        secret_sha256,
        created_at,
        revoked_at,
    })
}
