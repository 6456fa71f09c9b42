// Batches on both backends.
// Compiled once per backend: see the store's `lib.rs`.

use async_trait::async_trait;
use cairn_core::batch::{BatchCounts, BatchItem, BatchRecord, ItemStatus};
use cairn_core::{RunRecord, now_ms};

use crate::StoreError;
use crate::batches::*;

#[async_trait]
impl BatchStore for Store {
    async fn create_batch(
        &self,
        b: &BatchRecord,
        items: &[(String, String)],
    ) -> Result<BatchRecord, StoreError> {
        {
            let _writing = self.lock_writes().await;
            let mut tx = self.write_tx().await?;
            let created = sqlx::query(
                "INSERT INTO batches (id, name, agent, source, concurrency, max_attempts, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&b.id)
            .bind(&b.name)
            .bind(&b.agent)
            .bind(&b.source)
            .bind(b.concurrency)
            .bind(b.max_attempts)
            .bind(b.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if created == 1 {
                for (idx, (label, input)) in items.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO batch_items (batch_id, idx, label, input, status)
                         VALUES ($1, $2, $3, $4, 'pending')",
                    )
                    .bind(&b.id)
                    .bind(idx as i64)
                    .bind(label)
                    .bind(input)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        }
        self.get_batch(&b.name)
            .await?
            .ok_or_else(|| StoreError::corrupt("batches", "a created batch vanished"))
    }

    async fn get_batch(&self, id_or_name: &str) -> Result<Option<BatchRecord>, StoreError> {
        let row: Option<BatchRow> = sqlx::query_as(select_batches!("WHERE id = $1 OR name = $2"))
            .bind(id_or_name)
            .bind(id_or_name)
            .fetch_optional(self.writer())
            .await?;
        Ok(row.map(decode_batch))
    }

    async fn list_batches(&self, limit: i64) -> Result<Vec<BatchRecord>, StoreError> {
        let rows: Vec<BatchRow> =
            sqlx::query_as(select_batches!("ORDER BY created_at DESC, id LIMIT $1"))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(decode_batch).collect())
    }

    async fn active_batches(&self) -> Result<Vec<BatchRecord>, StoreError> {
        let rows: Vec<BatchRow> = sqlx::query_as(select_batches!(
            "WHERE finished_at IS NULL ORDER BY created_at, id"
        ))
        .fetch_all(self.writer())
        .await?;
        Ok(rows.into_iter().map(decode_batch).collect())
    }

    async fn batch_counts(&self, batch_id: &str) -> Result<BatchCounts, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM batch_items WHERE batch_id = $1 GROUP BY status",
        )
        .bind(batch_id)
        .fetch_all(self.writer())
        .await?;
        Ok(counts(rows))
    }

    async fn batch_items(
        &self,
        batch_id: &str,
        status: Option<ItemStatus>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<BatchItem>, StoreError> {
        let rows: Vec<ItemRow> = sqlx::query_as(
            "SELECT batch_id, idx, label, input, status, attempt, run_id, output, error
             FROM batch_items WHERE batch_id = $1 AND idx > $2 AND (CAST($3 AS TEXT) IS NULL OR status = $4)
             ORDER BY idx LIMIT $5",
        )
        .bind(batch_id)
        .bind(after)
        .bind(status.map(ItemStatus::as_str))
        .bind(status.map(ItemStatus::as_str))
        .bind(limit)
        .fetch_all(self.writer())
        .await?;
        rows.into_iter().map(decode_item).collect()
    }

    async fn start_batch_item(
        &self,
        batch_id: &str,
        idx: i64,
        run: &RunRecord,
    ) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let took = sqlx::query(
            "UPDATE batch_items SET status = 'running', attempt = attempt + 1, run_id = $1
             WHERE batch_id = $2 AND idx = $3 AND status = 'pending'",
        )
        .bind(&run.id)
        .bind(batch_id)
        .bind(idx)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if took != 1 {
            return Ok(false);
        }
        super::runs::queue_run_in_session(&mut tx, run).await?;
        tx.commit().await?;
        self.jobs_added();
        Ok(true)
    }

    async fn settle_batch(&self, b: &BatchRecord) -> Result<u64, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE batch_items SET status = 'done', error = NULL,
                 output = (SELECT r.output FROM runs r WHERE r.id = batch_items.run_id)
             WHERE batch_id = $1 AND status = 'running' AND EXISTS (
                 SELECT 1 FROM runs r WHERE r.id = batch_items.run_id AND r.status = 'completed')",
        )
        .bind(&b.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let failed = sqlx::query(
            "UPDATE batch_items SET
                 status = CASE WHEN attempt < CAST($1 AS BIGINT) THEN 'pending' ELSE 'failed' END,
                 error = (SELECT coalesce(r.error, r.status) FROM runs r WHERE r.id = batch_items.run_id)
             WHERE batch_id = $2 AND status = 'running' AND EXISTS (
                 SELECT 1 FROM runs r WHERE r.id = batch_items.run_id
                 AND r.status IN ('failed', 'cancelled'))",
        )
        .bind(b.max_attempts)
        .bind(&b.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE batches SET finished_at = $1 WHERE id = $2 AND finished_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM batch_items WHERE batch_id = $3
                             AND status IN ('pending', 'running'))",
        )
        .bind(now_ms())
        .bind(&b.id)
        .bind(&b.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done + failed)
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO leaders (name, holder, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE leaders.holder = excluded.holder OR leaders.until < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(self.writer())
        .await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT holder FROM leaders WHERE name = $1")
                .bind(name)
                .fetch_optional(self.writer())
                .await?;
        Ok(current.as_deref() == Some(holder))
    }
}
