//! The job queue: enqueue, claim under a lease, heartbeat, complete, and
//! re-queue expired leases. On SQLite one writer at a time makes a claim
//! atomic; the claim picks the ready job with the lowest
//! `(priority, run_at, id)` through a partial index.
//!
//! Not shared with PostgreSQL (see `both/`): the claim is a plain UPDATE
//! under the one writer, there `FOR UPDATE SKIP LOCKED` with LISTEN/NOTIFY
//! wake-ups; the statements differ in locking, not in placeholders.

use cairn_core::now_ms;
use sqlx::Row;

use crate::owner::{is_dead_local, this_process};
use async_trait::async_trait;

use super::SqliteStore;
use crate::StoreError;
use crate::queue::*;

#[async_trait]
impl JobQueue for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> Result<Option<String>, StoreError> {
        let _writing = self.lock_writes().await;
        insert_job(&mut *self.writer.acquire().await?, &job).await
    }

    async fn claim_jobs(
        &self,
        kinds: &[&str],
        max: usize,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let _writing = self.lock_writes().await;
        let now = now_ms();
        let kinds_json =
            serde_json::to_string(kinds).map_err(|e| StoreError::corrupt("jobs", e))?;
        let rows: Vec<ClaimedRow> = sqlx::query_as(
            "UPDATE jobs SET status = 'leased', attempt = attempt + 1, lease_owner = ?1, lease_until = ?2
             WHERE id IN (SELECT j.id FROM jobs j WHERE j.status = 'ready' AND j.run_at <= ?3
                         AND j.kind IN (SELECT value FROM json_each(?4))
                         -- Not a run whose session another live run holds:
                         -- it would only wait (and a message for it may
                         -- still join the running turn).
                         AND NOT EXISTS (SELECT 1 FROM runs r JOIN sessions s ON s.id = r.session_id
                                         WHERE r.id = j.run_id AND s.busy_run IS NOT NULL
                                           AND s.busy_run != r.id AND s.busy_until >= ?3)
                         ORDER BY j.priority, j.run_at, j.id LIMIT ?5)
             RETURNING id, kind, run_id, payload, attempt, priority, run_at",
        )
        .bind(this_process())
        .bind(now + lease_ms)
        .bind(now)
        .bind(kinds_json)
        .bind(max as i64)
        .fetch_all(&self.writer)
        .await?;
        claimed_in_order(rows)
    }

    async fn complete_jobs(&self, jobs: &[Job]) -> Result<u64, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let mut done = 0;
        for job in jobs {
            done +=
                sqlx::query("DELETE FROM jobs WHERE id = ? AND attempt = ? AND status = 'leased'")
                    .bind(&job.id)
                    .bind(job.attempt)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn fail_job(&self, job: &Job, error: &str, retry: &Retry) -> Result<Failed, StoreError> {
        let _writing = self.lock_writes().await;
        let outcome = failure(job, retry);
        let (status, run_at) = failure_row(outcome);
        let done = sqlx::query(
            "UPDATE jobs SET status = ?, run_at = COALESCE(?, run_at), last_error = ?,
                lease_owner = NULL, lease_until = NULL
             WHERE id = ? AND attempt = ? AND status = 'leased'",
        )
        .bind(status)
        .bind(run_at)
        .bind(error)
        .bind(&job.id)
        .bind(job.attempt)
        .execute(&self.writer)
        .await?;
        Ok(if done.rows_affected() == 1 {
            outcome
        } else {
            Failed::Fenced
        })
    }

    async fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn claim_session_backlog(
        &self,
        session_id: &str,
        lease_ms: i64,
    ) -> Result<Option<Job>, StoreError> {
        let _writing = self.lock_writes().await;
        let row: Option<JobRow> = sqlx::query_as(
            "UPDATE jobs SET status = 'leased', attempt = attempt + 1, lease_owner = ?, lease_until = ?
             WHERE id = (SELECT j.id FROM jobs j JOIN runs r ON r.id = j.run_id
                         WHERE j.status = 'ready' AND j.kind = ? AND r.session_id = ?
                         ORDER BY r.created_at, r.id LIMIT 1)
               AND run_at <= ?
             RETURNING id, kind, run_id, payload, attempt",
        )
        .bind(this_process())
        .bind(now_ms() + lease_ms)
        .bind(kinds::ADVANCE_RUN)
        .bind(session_id)
        .bind(now_ms())
        .fetch_optional(&self.writer)
        .await?;
        row.map(job_from_row).transpose()
    }

    async fn heartbeat_job(&self, job: &Job, lease_ms: i64) -> Result<Beat, StoreError> {
        let _writing = self.lock_writes().await;
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND attempt = ? AND status = 'leased'
             RETURNING cancel_requested",
        )
        .bind(now_ms() + lease_ms)
        .bind(&job.id)
        .bind(job.attempt)
        .fetch_optional(&self.writer)
        .await?;
        Ok(match cancel {
            None => Beat::Lost,
            Some(true) => Beat::CancelRequested,
            Some(false) => Beat::Held,
        })
    }

    async fn request_run_cancel(&self, run_id: &str) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let asked = sqlx::query(
            "UPDATE jobs SET cancel_requested = 1 WHERE run_id = ? AND status = 'leased'",
        )
        .bind(run_id)
        .execute(&self.writer)
        .await?;
        Ok(asked.rows_affected() > 0)
    }

    async fn complete_job(&self, job: &Job) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let done =
            sqlx::query("DELETE FROM jobs WHERE id = ? AND attempt = ? AND status = 'leased'")
                .bind(&job.id)
                .bind(job.attempt)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_job(&self, job: &Job) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query("UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL WHERE id = ? AND attempt = ? AND status = 'leased'")
            .bind(&job.id)
            .bind(job.attempt)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn release_job_until(&self, job: &Job, run_at: i64) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query(
            "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL, run_at = ? WHERE id = ? AND attempt = ? AND status = 'leased'",
        )
        .bind(run_at)
        .bind(&job.id)
        .bind(job.attempt)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn set_provider_cooldown(
        &self,
        provider: &str,
        until: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query(
            "INSERT INTO provider_cooldowns (provider, until, reason) VALUES (?, ?, ?)
             ON CONFLICT (provider) DO UPDATE SET until = MAX(until, excluded.until), reason = excluded.reason",
        )
        .bind(provider)
        .bind(until)
        .bind(reason)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn provider_cooldown(
        &self,
        provider: &str,
        now: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT until, reason FROM provider_cooldowns WHERE provider = ? AND until > ?",
        )
        .bind(provider)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn provider_cooldowns(&self, now: i64) -> Result<Vec<(String, i64, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT provider, until, reason FROM provider_cooldowns WHERE until > ? ORDER BY provider")
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn recover_leases(&self) -> Result<u64, StoreError> {
        let _writing = self.lock_writes().await;
        let now = now_ms();
        let mut requeued = sqlx::query(
            "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL
             WHERE status = 'leased' AND lease_until < ?",
        )
        .bind(now)
        .execute(&self.writer)
        .await?
        .rows_affected();
        let held = sqlx::query("SELECT id, lease_owner FROM jobs WHERE status = 'leased'")
            .fetch_all(&self.pool)
            .await?;
        for r in held {
            let owner: Option<String> = r.try_get("lease_owner")?;
            if owner.as_deref().is_some_and(is_dead_local) {
                let id: String = r.try_get("id")?;
                requeued += sqlx::query("UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?")
                    .bind(&id)
                    .bind(&owner)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
            }
        }
        let sessions =
            sqlx::query("SELECT id, busy_owner FROM sessions WHERE busy_run IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        for r in sessions {
            let owner: Option<String> = r.try_get("busy_owner")?;
            if owner.as_deref().is_some_and(is_dead_local) {
                let id: String = r.try_get("id")?;
                sqlx::query("UPDATE sessions SET busy_run = NULL, busy_until = NULL, busy_owner = NULL WHERE id = ? AND busy_owner = ?")
                    .bind(&id)
                    .bind(&owner)
                    .execute(&self.writer)
                    .await?;
            }
        }
        Ok(requeued)
    }
}

/// The insert of a `JobInsert` and its creation time, for both the sqlx
/// connections and the step writer's rusqlite one.
pub(crate) const INSERT_JOB: &str =
    "INSERT INTO jobs (id, kind, run_id, payload, priority, run_at, status, dedup_key, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ready', ?7, ?8) ON CONFLICT DO NOTHING";

/// Inserts a job within `conn` (a transaction or the writer); `None` when a
/// live job with the same dedup key exists.
pub(crate) async fn insert_job(
    conn: &mut sqlx::SqliteConnection,
    job: &NewJob,
) -> Result<Option<String>, StoreError> {
    let now = now_ms();
    let (id, kind, run_id, payload, priority, run_at, dedup_key) = job_insert(job, now);
    let done = sqlx::query(INSERT_JOB)
        .bind(&id)
        .bind(kind)
        .bind(run_id)
        .bind(payload)
        .bind(priority)
        .bind(run_at)
        .bind(dedup_key)
        .bind(now)
        .execute(conn)
        .await?;
    Ok((done.rows_affected() == 1).then_some(id))
}
