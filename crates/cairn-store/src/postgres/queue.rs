//! The job queue on PostgreSQL. A claim is one UPDATE over a
//! `FOR UPDATE SKIP LOCKED` pick from the ready partial index, so claimers
//! never wait on each other and no job goes to two of them; `attempt` fences
//! stale completions. Wake-ups cross processes by `LISTEN/NOTIFY`,
//! debounced (one NOTIFY per burst of enqueues, never a trigger per row),
//! with polling as the fallback when a notification is lost.
//!
//! Not shared with SQLite (see `both/`): the locking clauses and wake-ups
//! are PostgreSQL's own.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::now_ms;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use super::PgStore;
use crate::StoreError;
use crate::owner::{is_dead_local, this_process};
use crate::queue::*;

/// The NOTIFY channel for "jobs are ready".
const CHANNEL: &str = "cairn_jobs";
/// Enqueues closer together than this share one NOTIFY.
const DEBOUNCE: Duration = Duration::from_millis(2);

/// "Jobs may be ready", counted: a waiter that read the count before it
/// looked at the queue cannot miss a signal sent in between.
#[derive(Default)]
pub(crate) struct Signal {
    generation: std::sync::atomic::AtomicU64,
    notify: Notify,
}

impl Signal {
    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    fn seen(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Cross-process "jobs are ready" signals.
pub struct Wakeups {
    local: Arc<Signal>,
    send: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Wakeups {
    pub(crate) fn start(pool: PgPool) -> Self {
        let local = Arc::new(Signal::default());
        let send = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(pool.clone(), local.clone()));
        let sender = tokio::spawn(announce(pool, send.clone()));
        Wakeups {
            local,
            send,
            tasks: vec![listener, sender],
        }
    }

    /// Jobs were added or became ready: wake waiters here and elsewhere.
    pub fn jobs_added(&self) {
        self.local.bump();
        self.send.notify_one();
    }

    /// The count of signals so far; read it before looking at the queue.
    pub fn seen(&self) -> u64 {
        self.local.seen()
    }

    /// Waits until a signal newer than `seen` (at once if one came
    /// already), or `poll` has passed.
    pub async fn wait(&self, seen: u64, poll: Duration) {
        let notified = self.local.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.local.seen() != seen {
            return;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Relays NOTIFYs from other processes; reconnects by itself (sqlx's
/// listener re-subscribes after a lost connection), and wakes waiters after
/// a reconnect since notifications sent meanwhile are gone.
async fn listen(pool: PgPool, local: Arc<Signal>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for job wake-ups; polling until it can");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN for job wake-ups; polling until it can");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        local.bump();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => local.bump(),
                // The connection dropped; the next call reconnects.
                Ok(None) => local.bump(),
                Err(e) => {
                    tracing::warn!(error = %e, "job wake-up listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Sends a NOTIFY at once for the first `jobs_added` of a burst, then at
/// most one per `DEBOUNCE` while the burst lasts (the first job's latency
/// pays nothing for the debounce).
async fn announce(pool: PgPool, send: Arc<Notify>) {
    loop {
        send.notified().await;
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "cannot send a job wake-up; others will poll");
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}

#[async_trait]
impl JobQueue for PgStore {
    fn jobs_seen(&self) -> u64 {
        self.wakeups.seen()
    }

    async fn wait_for_jobs(&self, seen: u64, poll: std::time::Duration) {
        self.wakeups.wait(seen, poll).await
    }

    async fn enqueue(&self, job: NewJob) -> Result<Option<String>, StoreError> {
        let id = insert_job(&mut *self.pool.acquire().await?, &job).await?;
        if id.is_some() {
            self.wakeups.jobs_added();
        }
        Ok(id)
    }

    async fn claim_jobs(
        &self,
        kinds: &[&str],
        max: usize,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let now = now_ms();
        let kinds: Vec<String> = kinds.iter().map(std::string::ToString::to_string).collect();
        // One statement: see `cairn_claim_jobs` (migration 0009) for why
        // it is a function.
        let rows: Vec<ClaimedRow> = sqlx::query_as(
            "SELECT id, kind, run_id, payload, attempt, priority, run_at FROM cairn_claim_jobs($1, $2, $3, $4, $5)",
        )
        .bind(this_process())
        .bind(now + lease_ms)
        .bind(now)
        .bind(kinds)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await?;
        claimed_in_order(rows)
    }

    async fn claim_session_backlog(
        &self,
        session_id: &str,
        lease_ms: i64,
    ) -> Result<Option<Job>, StoreError> {
        let now = now_ms();
        let row: Option<JobRow> = sqlx::query_as(
            "UPDATE jobs SET status = 'leased', attempt = attempt + 1, lease_owner = $1, lease_until = $2
             WHERE id = (SELECT j.id FROM jobs j JOIN runs r ON r.id = j.run_id
                         WHERE j.status = 'ready' AND j.kind = $3 AND r.session_id = $4
                         ORDER BY r.created_at, r.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED)
               AND run_at <= $5
             RETURNING id, kind, run_id, payload, attempt",
        )
        .bind(this_process())
        .bind(now + lease_ms)
        .bind(kinds::ADVANCE_RUN)
        .bind(session_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(job_from_row).transpose()
    }

    async fn heartbeat_job(&self, job: &Job, lease_ms: i64) -> Result<Beat, StoreError> {
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND attempt = $3 AND status = 'leased'
             RETURNING cancel_requested",
        )
        .bind(now_ms() + lease_ms)
        .bind(&job.id)
        .bind(job.attempt)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match cancel {
            None => Beat::Lost,
            Some(true) => Beat::CancelRequested,
            Some(false) => Beat::Held,
        })
    }

    async fn request_run_cancel(&self, run_id: &str) -> Result<bool, StoreError> {
        let asked = sqlx::query(
            "UPDATE jobs SET cancel_requested = TRUE WHERE run_id = $1 AND status = 'leased'",
        )
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(asked.rows_affected() > 0)
    }

    async fn complete_job(&self, job: &Job) -> Result<bool, StoreError> {
        Ok(self.complete_jobs(std::slice::from_ref(job)).await? == 1)
    }

    async fn complete_jobs(&self, jobs: &[Job]) -> Result<u64, StoreError> {
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        let attempts: Vec<i64> = jobs.iter().map(|j| j.attempt).collect();
        let done = sqlx::query(
            "DELETE FROM jobs j USING unnest($1::text[], $2::bigint[]) AS c(id, attempt)
             WHERE j.id = c.id AND j.attempt = c.attempt AND j.status = 'leased'",
        )
        .bind(ids)
        .bind(attempts)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn fail_job(&self, job: &Job, error: &str, retry: &Retry) -> Result<Failed, StoreError> {
        let outcome = failure(job, retry);
        let (status, run_at) = failure_row(outcome);
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, run_at = COALESCE($2, run_at), last_error = $3,
                lease_owner = NULL, lease_until = NULL
             WHERE id = $4 AND attempt = $5 AND status = 'leased'",
        )
        .bind(status)
        .bind(run_at)
        .bind(error)
        .bind(&job.id)
        .bind(job.attempt)
        .execute(&self.pool)
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

    async fn release_job(&self, job: &Job) -> Result<(), StoreError> {
        self.release_job_until(job, 0).await
    }

    async fn release_job_until(&self, job: &Job, run_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL,
                run_at = CASE WHEN $1 > 0 THEN $1 ELSE run_at END
             WHERE id = $2 AND attempt = $3 AND status = 'leased'",
        )
        .bind(run_at)
        .bind(&job.id)
        .bind(job.attempt)
        .execute(&self.pool)
        .await?;
        self.wakeups.jobs_added();
        Ok(())
    }

    async fn set_provider_cooldown(
        &self,
        provider: &str,
        until: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO provider_cooldowns (provider, until, reason) VALUES ($1, $2, $3)
             ON CONFLICT (provider) DO UPDATE
             SET until = GREATEST(provider_cooldowns.until, excluded.until), reason = excluded.reason",
        )
        .bind(provider)
        .bind(until)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn provider_cooldown(
        &self,
        provider: &str,
        now: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT until, reason FROM provider_cooldowns WHERE provider = $1 AND until > $2",
        )
        .bind(provider)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn provider_cooldowns(&self, now: i64) -> Result<Vec<(String, i64, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT provider, until, reason FROM provider_cooldowns WHERE until > $1 ORDER BY provider",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn recover_leases(&self) -> Result<u64, StoreError> {
        let mut requeued = sqlx::query(
            "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL
             WHERE status = 'leased' AND lease_until < $1",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected();
        // Holders on this host that died are known at once, without
        // waiting for their leases to run out.
        let held: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id, lease_owner FROM jobs WHERE status = 'leased'")
                .fetch_all(&self.pool)
                .await?;
        for (id, owner) in held {
            if owner.as_deref().is_some_and(is_dead_local) {
                requeued += sqlx::query(
                    "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL
                     WHERE id = $1 AND lease_owner = $2 AND status = 'leased'",
                )
                .bind(&id)
                .bind(&owner)
                .execute(&self.pool)
                .await?
                .rows_affected();
            }
        }
        let sessions: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id, busy_owner FROM sessions WHERE busy_run IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        for (id, owner) in sessions {
            if owner.as_deref().is_some_and(is_dead_local) {
                sqlx::query("UPDATE sessions SET busy_run = NULL, busy_until = NULL, busy_owner = NULL WHERE id = $1 AND busy_owner = $2")
                    .bind(&id)
                    .bind(&owner)
                    .execute(&self.pool)
                    .await?;
            }
        }
        if requeued > 0 {
            self.wakeups.jobs_added();
        }
        Ok(requeued)
    }
}

/// Inserts a job on `conn` (a transaction or a pooled connection); `None`
/// when a live job with the same dedup key exists.
pub(crate) async fn insert_job(
    conn: &mut sqlx::PgConnection,
    job: &NewJob,
) -> Result<Option<String>, StoreError> {
    let now = now_ms();
    let (id, kind, run_id, payload, priority, run_at, dedup_key) = job_insert(job, now);
    let done = sqlx::query(
        "INSERT INTO jobs (id, kind, run_id, payload, priority, run_at, status, dedup_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'ready', $7, $8) ON CONFLICT DO NOTHING",
    )
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
