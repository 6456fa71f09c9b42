// People's API keys on both backends.
// Compiled once per backend: see the store's `lib.rs`.

use async_trait::async_trait;
use cairn_core::keys::ApiKeyRecord;

use crate::StoreError;
use crate::keys::*;

macro_rules! select_keys {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, role, agent, secret_sha256, created_at, revoked_at FROM api_keys ",
            $tail
        )
    };
}

#[async_trait]
impl KeyStore for Store {
    async fn create_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, role, agent, secret_sha256, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.id)
        .bind(&k.user_id)
        .bind(k.role.as_str())
        .bind(&k.agent)
        .bind(&k.secret_sha256)
        .bind(k.created_at)
        .bind(k.revoked_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn get_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row: Option<KeyCols> = sqlx::query_as(select_keys!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(decode_key).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows: Vec<KeyCols> = sqlx::query_as(select_keys!("ORDER BY created_at DESC, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(decode_key).collect()
    }

    async fn revoke_key(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let n =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(self.writer())
                .await?
                .rows_affected();
        Ok(n == 1)
    }
}
