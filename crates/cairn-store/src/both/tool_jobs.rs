// Tool jobs (a tool call sent to a worker) on both backends.
// Compiled once per backend: see the store's `lib.rs`.

use async_trait::async_trait;
use cairn_core::cluster::{NewToolJob, ToolJobRecord, ToolJobStatus};
use cairn_core::{ToolOutput, now_ms};

use crate::StoreError;
use crate::tool_jobs::*;

#[async_trait]
impl ToolJobStore for Store {
    async fn submit_tool_job(&self, job: &NewToolJob) -> Result<ToolJobRecord, StoreError> {
        let e = encode(job)?;
        let inserted: Option<ToolJobRow> = {
            let _writing = self.lock_writes().await;
            let insert = sqlx::query_as(
                "INSERT INTO tool_jobs (id, run_id, tool, input, requires, workspace, sandbox,
                     idempotent, deadline, traceparent, status, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'ready', $11)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id, run_id, tool, input, requires, workspace, sandbox, idempotent,
                     deadline, traceparent, status, attempt, node, output, created_at, finished_at",
            );
            let inserted = bind_submission(insert, job, &e)
                .bind(now_ms())
                .fetch_optional(self.writer())
                .await?;
            // Coordinators elsewhere dispatch it without waiting for a poll.
            self.jobs_added();
            inserted
        };
        // New: the row came back with the insert (one round trip on the
        // hot path); submitted before (a resumed run): read it.
        match inserted {
            Some(row) => decode_tool_job(row),
            None => self
                .tool_job(&job.id)
                .await?
                .ok_or_else(|| StoreError::corrupt("tool_jobs", "a submitted job vanished")),
        }
    }

    async fn submit_leased_tool_job(
        &self,
        job: &NewToolJob,
        lease: &JobLease<'_>,
    ) -> Result<Option<ToolJobRecord>, StoreError> {
        let e = encode(job)?;
        let _writing = self.lock_writes().await;
        // Inserted only where the dispatcher would have sent it: any node
        // for a call without a named workspace or the workspace's first
        // call, else the node holding the workspace.
        let insert = sqlx::query_as(
            "INSERT INTO tool_jobs (id, run_id, tool, input, requires, workspace, sandbox,
                 idempotent, deadline, traceparent, status, attempt, node, lease_owner,
                 lease_until, created_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'leased', 1, $11, $12, $13, $14
             WHERE CAST($6 AS TEXT) IS NULL OR COALESCE(
                 (SELECT p.node FROM tool_jobs p
                  WHERE p.run_id = $2 AND p.workspace = $6 AND p.node IS NOT NULL
                  ORDER BY p.created_at DESC, p.id DESC LIMIT 1), $11) = $11
             ON CONFLICT (id) DO NOTHING
             RETURNING id, run_id, tool, input, requires, workspace, sandbox, idempotent,
                 deadline, traceparent, status, attempt, node, output, created_at, finished_at",
        );
        let row: Option<ToolJobRow> = bind_submission(insert, job, &e)
            .bind(lease.node)
            .bind(lease.owner)
            .bind(lease.until)
            .bind(now_ms())
            .fetch_optional(self.writer())
            .await?;
        row.map(decode_tool_job).transpose()
    }

    async fn tool_job(&self, id: &str) -> Result<Option<ToolJobRecord>, StoreError> {
        let row: Option<ToolJobRow> = sqlx::query_as(select_tool_jobs!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.writer())
            .await?;
        row.map(decode_tool_job).transpose()
    }

    async fn ready_tool_jobs(&self, limit: i64) -> Result<Vec<ReadyToolJob>, StoreError> {
        let rows = sqlx::query(select_ready_tool_jobs!("$1"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ready_from_row).collect()
    }

    async fn lease_tool_job(
        &self,
        id: &str,
        node: &str,
        owner: &str,
        until: i64,
    ) -> Result<Option<i64>, StoreError> {
        let _writing = self.lock_writes().await;
        let attempt: Option<i64> = sqlx::query_scalar(
            "UPDATE tool_jobs SET status = 'leased', attempt = attempt + 1, node = $1,
                 lease_owner = $2, lease_until = $3
             WHERE id = $4 AND status = 'ready' RETURNING attempt",
        )
        .bind(node)
        .bind(owner)
        .bind(until)
        .bind(id)
        .fetch_optional(self.writer())
        .await?;
        Ok(attempt)
    }

    async fn renew_tool_leases(
        &self,
        jobs: &[cairn_core::cluster::JobRef],
        node: &str,
        owner: &str,
        until: i64,
    ) -> Result<Vec<cairn_core::cluster::JobRef>, StoreError> {
        let _writing = self.lock_writes().await;
        let mut stale = Vec::new();
        // A worker runs a handful of jobs: one statement each is cheaper
        // than building an array parameter both backends accept.
        for j in jobs {
            let held = sqlx::query(
                "UPDATE tool_jobs SET lease_until = $1, lease_owner = $2
                 WHERE id = $3 AND attempt = $4 AND status = 'leased' AND node = $5",
            )
            .bind(until)
            .bind(owner)
            .bind(&j.job)
            .bind(j.attempt)
            .bind(node)
            .execute(self.writer())
            .await?
            .rows_affected();
            if held == 0 {
                stale.push(j.clone());
            }
        }
        Ok(stale)
    }

    async fn finish_tool_job(
        &self,
        id: &str,
        node: &str,
        attempt: i64,
        output: &ToolOutput,
    ) -> Result<bool, StoreError> {
        let output = encode_output(output)?;
        let _writing = self.lock_writes().await;
        let done = sqlx::query(
            "UPDATE tool_jobs SET status = 'done', output = $1, finished_at = $2,
                 lease_owner = NULL, lease_until = NULL
             WHERE id = $3 AND attempt = $4 AND status = 'leased' AND node = $5",
        )
        .bind(output)
        .bind(now_ms())
        .bind(id)
        .bind(attempt)
        .bind(node)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn lose_tool_job(
        &self,
        id: &str,
        attempt: i64,
        why: &str,
    ) -> Result<Option<ToolJobStatus>, StoreError> {
        let _writing = self.lock_writes().await;
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE tool_jobs SET
                 status = CASE WHEN idempotent THEN 'ready' ELSE 'unknown' END,
                 output = CASE WHEN idempotent THEN NULL ELSE CAST($1 AS TEXT) END,
                 finished_at = CASE WHEN idempotent THEN NULL ELSE CAST($2 AS BIGINT) END,
                 lease_owner = NULL, lease_until = NULL
             WHERE id = $3 AND attempt = $4 AND status = 'leased' RETURNING status",
        )
        .bind(unknown_output(why))
        .bind(now_ms())
        .bind(id)
        .bind(attempt)
        .fetch_optional(self.writer())
        .await?;
        if status.as_deref() == Some("ready") {
            // Ready again: any coordinator with a fitting worker may take it.
            self.jobs_added();
        }
        Ok(status.as_deref().and_then(ToolJobStatus::parse))
    }

    async fn expire_tool_jobs(&self, now: i64) -> Result<u64, StoreError> {
        let _writing = self.lock_writes().await;
        let lost = sqlx::query(
            "UPDATE tool_jobs SET
                 status = CASE WHEN idempotent THEN 'ready' ELSE 'unknown' END,
                 output = CASE WHEN idempotent THEN NULL ELSE CAST($1 AS TEXT) END,
                 finished_at = CASE WHEN idempotent THEN NULL ELSE CAST($2 AS BIGINT) END,
                 lease_owner = NULL, lease_until = NULL
             WHERE status = 'leased' AND lease_until < $3",
        )
        .bind(unknown_output(
            "the coordinator that sent it to a worker stopped before the result came back",
        ))
        .bind(now)
        .bind(now)
        .execute(self.writer())
        .await?
        .rows_affected();
        let expired = sqlx::query(
            "UPDATE tool_jobs SET status = 'expired', output = $1, finished_at = $2
             WHERE status = 'ready' AND deadline < $3",
        )
        .bind(expired_output())
        .bind(now)
        .bind(now)
        .execute(self.writer())
        .await?
        .rows_affected();
        if lost + expired > 0 {
            self.jobs_added();
        }
        Ok(lost + expired)
    }

    async fn cancel_tool_job(&self, id: &str) -> Result<Option<(String, i64)>, StoreError> {
        let _writing = self.lock_writes().await;
        let row: Option<(Option<String>, i64)> = sqlx::query_as(
            "UPDATE tool_jobs SET status = 'cancelled', output = $1, finished_at = $2,
                 lease_owner = NULL, lease_until = NULL
             WHERE id = $3 AND status IN ('ready', 'leased') RETURNING node, attempt",
        )
        .bind(cancelled_output())
        .bind(now_ms())
        .bind(id)
        .fetch_optional(self.writer())
        .await?;
        Ok(row.and_then(|(node, attempt)| node.map(|n| (n, attempt))))
    }

    async fn list_tool_jobs(&self, limit: i64) -> Result<Vec<ToolJobRecord>, StoreError> {
        let rows: Vec<ToolJobRow> = sqlx::query_as(select_tool_jobs!(
            "ORDER BY status IN ('done', 'unknown', 'expired', 'cancelled'), coalesce(finished_at, created_at) DESC
             LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode_tool_job).collect()
    }
}
