// The audit log on both backends.
// Compiled once per backend: see the store's `lib.rs`. Each backend's
// file provides `lock_chain`, which makes appends take turns.

use async_trait::async_trait;
use cairn_core::audit::{AuditKey, AuditRow, GENESIS, NewAudit};

use crate::StoreError;
use crate::audit::*;

macro_rules! select_audit {
    ($tail:literal) => {
        concat!(
            "SELECT seq, at, key_id, actor, event, prev, seal FROM audit_log ",
            $tail
        )
    };
}

#[async_trait]
impl AuditStore for Store {
    async fn append_audit(
        &self,
        key: &AuditKey,
        entries: &[NewAudit],
    ) -> Result<Vec<i64>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        lock_chain(&mut tx).await?;
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, seal FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (mut seq, mut prev) = last.unwrap_or((0, GENESIS.to_string()));
        let mut seqs = Vec::with_capacity(entries.len());
        for e in entries {
            seq += 1;
            let actor =
                serde_json::to_string(&e.actor).map_err(|e| StoreError::corrupt("audit_log", e))?;
            let event =
                serde_json::to_string(&e.event).map_err(|e| StoreError::corrupt("audit_log", e))?;
            let seal = key.seal(&prev, seq, e.at, &actor, &event);
            sqlx::query(
                "INSERT INTO audit_log (seq, at, key_id, actor, event, prev, seal)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(seq)
            .bind(e.at)
            .bind(key.id())
            .bind(actor)
            .bind(event)
            .bind(&prev)
            .bind(&seal)
            .execute(&mut *tx)
            .await?;
            seqs.push(seq);
            prev = seal;
        }
        tx.commit().await?;
        Ok(seqs)
    }

    async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows: Vec<AuditCols> =
            sqlx::query_as(select_audit!("WHERE seq > $1 ORDER BY seq LIMIT $2"))
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(decode_audit).collect())
    }

    async fn audit_tail(&self, n: i64) -> Result<Vec<AuditRow>, StoreError> {
        let mut rows: Vec<AuditCols> = sqlx::query_as(select_audit!("ORDER BY seq DESC LIMIT $1"))
            .bind(n)
            .fetch_all(&self.pool)
            .await?;
        rows.reverse();
        Ok(rows.into_iter().map(decode_audit).collect())
    }
}
