// Cluster membership on both backends.
// Compiled once per backend: see the store's `lib.rs`.

use async_trait::async_trait;
use cairn_core::cluster::{JoinTokenRecord, Labels, NodeRecord, Redemption};
use cairn_core::now_ms;

use crate::StoreError;
use crate::cluster::*;

#[async_trait]
impl ClusterStore for Store {
    async fn create_join_token(&self, t: &JoinTokenRecord) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query(
            "INSERT INTO cluster_tokens (id, secret_sha256, labels, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.secret_sha256)
        .bind(encode_labels(&t.labels)?)
        .bind(t.expires_at)
        .bind(t.created_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn join_token_labels(&self, id: &str) -> Result<Option<Labels>, StoreError> {
        let labels: Option<String> =
            sqlx::query_scalar("SELECT labels FROM cluster_tokens WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        labels
            .map(|l| serde_json::from_str(&l).map_err(|e| StoreError::corrupt("cluster_tokens", e)))
            .transpose()
    }

    async fn redeem_join_token(
        &self,
        id: &str,
        secret_sha256: &str,
        node: &NodeRecord,
        now: i64,
    ) -> Result<Redemption, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let spent: Option<String> = sqlx::query_scalar(
            "UPDATE cluster_tokens SET used_at = $1, used_by = $2
             WHERE id = $3 AND secret_sha256 = $4 AND used_at IS NULL AND expires_at > $5
             RETURNING labels",
        )
        .bind(now)
        .bind(&node.id)
        .bind(id)
        .bind(secret_sha256)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(labels) = spent else {
            let row: Option<(i64, Option<i64>, bool)> = sqlx::query_as(
                "SELECT expires_at, used_at, secret_sha256 = $1 FROM cluster_tokens WHERE id = $2",
            )
            .bind(secret_sha256)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            return Ok(refusal(row, now));
        };
        let labels =
            serde_json::from_str(&labels).map_err(|e| StoreError::corrupt("cluster_tokens", e))?;
        let node = NodeRecord {
            labels,
            joined_at: now,
            ..node.clone()
        };
        sqlx::query(
            "INSERT INTO cluster_nodes (id, name, labels, cert_sha256, slots, joined_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&node.id)
        .bind(&node.name)
        .bind(encode_labels(&node.labels)?)
        .bind(&node.cert_sha256)
        .bind(node.slots)
        .bind(node.joined_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Redemption::Joined(node))
    }

    async fn node_by_cert(&self, cert_sha256: &str) -> Result<Option<NodeRecord>, StoreError> {
        let row: Option<NodeRow> = sqlx::query_as(select_nodes!("WHERE cert_sha256 = $1"))
            .bind(cert_sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.map(decode_node).transpose()
    }

    async fn node_seen(
        &self,
        id: &str,
        coordinator: Option<&str>,
        slots: i64,
        running: i64,
    ) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query(
            "UPDATE cluster_nodes SET coordinator = $1, slots = $2, running = $3, last_seen = $4
             WHERE id = $5",
        )
        .bind(coordinator)
        .bind(slots)
        .bind(running)
        .bind(now_ms())
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows: Vec<NodeRow> = sqlx::query_as(select_nodes!("ORDER BY name, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(decode_node).collect()
    }

    async fn revoke_node(&self, id_or_name: &str) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let done = sqlx::query(
            "UPDATE cluster_nodes SET revoked_at = coalesce(revoked_at, $1)
             WHERE id = $2 OR name = $3",
        )
        .bind(now_ms())
        .bind(id_or_name)
        .bind(id_or_name)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
