//! The job queue: enqueue, claim under a lease, heartbeat, complete, and
//! re-queue expired leases. On SQLite one writer at a time makes a claim
//! atomic; the claim picks the ready job with the lowest
//! `(priority, run_at, id)` through a partial index.

use async_trait::async_trait;

use crate::StoreError;

/// Kinds of job.
pub mod kinds {
    /// Drive a run from its journal to its end.
    pub const ADVANCE_RUN: &str = "advance_run";
}

/// A job to add.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// What to do (see [`kinds`]).
    pub kind: String,
    /// The run it concerns, if any.
    pub run_id: Option<String>,
    /// Extra data.
    pub payload: serde_json::Value,
    /// Lower runs first.
    pub priority: i64,
    /// Not before (ms since epoch); 0 for now.
    pub run_at: i64,
    /// At most one live job per key.
    pub dedup_key: Option<String>,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Run it concerns.
    pub run_id: Option<String>,
    /// Extra data.
    pub payload: serde_json::Value,
    /// Fencing token: this claim's attempt number.
    pub attempt: i64,
}

/// How a failed job is retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all before the job is dead-lettered.
    pub max_attempts: i64,
    /// Wait after the first failure; doubles each time.
    pub base_ms: i64,
    /// Longest wait.
    pub max_ms: i64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 5,
            base_ms: 1_000,
            max_ms: 300_000,
        }
    }
}

impl Retry {
    /// When attempt `attempt` (from 1) has failed at `now`, the time of the
    /// next try, or `None` when none is left.
    pub fn next_at(&self, attempt: i64, now: i64) -> Option<i64> {
        if attempt >= self.max_attempts {
            return None;
        }
        let shift = (attempt - 1).clamp(0, 30) as u32;
        let wait = self.base_ms.saturating_mul(1_i64 << shift).min(self.max_ms);
        Some(now + wait)
    }
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// It runs again at this time (ms).
    Retrying {
        /// When.
        at: i64,
    },
    /// No attempts left: it is kept, with its error, as a dead letter.
    Dead,
    /// A newer claim holds the job; this failure changed nothing.
    Fenced,
}

/// What a lease renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Still held; carry on.
    Held,
    /// Held, and the run was asked to cancel.
    CancelRequested,
    /// Lost: it expired and another process took the job.
    Lost,
}

/// JobQueue: see the module documentation.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// How many "jobs may be ready" signals this process has seen; read it
    /// before looking at the queue and pass it to `wait_for_jobs`.
    fn jobs_seen(&self) -> u64 {
        0
    }

    /// Waits until jobs may have become ready since `seen` (another process
    /// enqueued or released some), or `poll` has passed. Without
    /// cross-process signals (SQLite) it is the poll.
    async fn wait_for_jobs(&self, _seen: u64, poll: std::time::Duration) {
        tokio::time::sleep(poll).await
    }

    /// Adds a job; `None` when a live job with the same dedup key exists.
    async fn enqueue(&self, job: NewJob) -> Result<Option<String>, StoreError>;

    /// Claims the next ready job of one of `kinds` for `lease_ms`.
    async fn claim_job(&self, kinds: &[&str], lease_ms: i64) -> Result<Option<Job>, StoreError> {
        Ok(self.claim_jobs(kinds, 1, lease_ms).await?.pop())
    }

    /// Claims up to `max` ready jobs of `kinds` in one statement, in
    /// `(priority, run_at, id)` order; no job goes to two claimers.
    async fn claim_jobs(
        &self,
        kinds: &[&str],
        max: usize,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError>;

    /// Completes several jobs at once; returns how many were still held by
    /// these claims (a fenced-off one is left alone).
    async fn complete_jobs(&self, jobs: &[Job]) -> Result<u64, StoreError>;

    /// A job's attempt failed: it is tried again after a backoff, or moved
    /// to the dead letters once `retry.max_attempts` is spent.
    async fn fail_job(&self, job: &Job, error: &str, retry: &Retry) -> Result<Failed, StoreError>;

    /// Jobs by status (`ready`, `leased`, `dead`), for status pages.
    async fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Claims the oldest ready run-driving job among the runs of a session,
    /// so interrupted earlier turns are finished before later ones; `None`
    /// while that oldest one is not due yet (a turn waiting for a cooldown
    /// is not overtaken).
    async fn claim_session_backlog(
        &self,
        session_id: &str,
        lease_ms: i64,
    ) -> Result<Option<Job>, StoreError>;

    /// Extends a lease, and says whether it is still held and whether the
    /// run was asked to cancel meanwhile (through another process).
    async fn heartbeat_job(&self, job: &Job, lease_ms: i64) -> Result<Beat, StoreError>;

    /// Asks whoever drives `run_id` to cancel it, at its next lease
    /// renewal; `false` if no process holds the run's job.
    async fn request_run_cancel(&self, run_id: &str) -> Result<bool, StoreError>;

    /// Finishes a job: it leaves the table. `false` (and nothing changes) if
    /// this claim was fenced off by a newer attempt.
    async fn complete_job(&self, job: &Job) -> Result<bool, StoreError>;

    /// Hands a job back unfinished (graceful shutdown), ready at once.
    async fn release_job(&self, job: &Job) -> Result<(), StoreError>;

    /// Hands a job back, to be claimed no earlier than `run_at` (ms).
    async fn release_job_until(&self, job: &Job, run_at: i64) -> Result<(), StoreError>;

    /// Records that `provider` asked us to wait until `until` (ms).
    async fn set_provider_cooldown(
        &self,
        provider: &str,
        until: i64,
        reason: &str,
    ) -> Result<(), StoreError>;

    /// When `provider`'s cooldown ends and why, if it is cooling down at `now`.
    async fn provider_cooldown(
        &self,
        provider: &str,
        now: i64,
    ) -> Result<Option<(i64, String)>, StoreError>;

    /// Providers cooling down at `now`: (provider, until, reason).
    async fn provider_cooldowns(&self, now: i64) -> Result<Vec<(String, i64, String)>, StoreError>;

    /// Makes jobs whose lease expired, or whose holder on this host is dead,
    /// ready again; frees sessions held by dead local processes. Returns how
    /// many jobs were re-queued.
    async fn recover_leases(&self) -> Result<u64, StoreError>;
}

/// A job as both backends select it: id, kind, run_id, payload, attempt.
pub(crate) type JobRow = (String, String, Option<String>, String, i64);

/// A claimed job with its place in the order: the job's columns, then
/// priority and run_at (a multi-row UPDATE returns rows in no set order).
pub(crate) type ClaimedRow = (String, String, Option<String>, String, i64, i64, i64);

/// A job from its row.
pub(crate) fn job_from_row(r: JobRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: r.0,
        kind: r.1,
        run_id: r.2,
        payload: serde_json::from_str(&r.3).map_err(|e| StoreError::corrupt("jobs", e))?,
        attempt: r.4,
    })
}

/// Claimed jobs in `(priority, run_at, id)` order.
pub(crate) fn claimed_in_order(mut rows: Vec<ClaimedRow>) -> Result<Vec<Job>, StoreError> {
    rows.sort_by(|a, b| (a.5, a.6, &a.0).cmp(&(b.5, b.6, &b.0)));
    rows.into_iter()
        .map(|r| job_from_row((r.0, r.1, r.2, r.3, r.4)))
        .collect()
}

/// What a failure of `job` leads to under `retry`.
pub(crate) fn failure(job: &Job, retry: &Retry) -> Failed {
    match retry.next_at(job.attempt, cairn_core::now_ms()) {
        Some(at) => Failed::Retrying { at },
        None => Failed::Dead,
    }
}

/// The status and next run time a failure is stored as.
pub(crate) fn failure_row(outcome: Failed) -> (&'static str, Option<i64>) {
    match outcome {
        Failed::Retrying { at } => ("ready", Some(at)),
        Failed::Dead | Failed::Fenced => ("dead", None),
    }
}

/// A job as inserted: id, kind, run_id, payload JSON, priority, run_at
/// (0: now), dedup_key.
pub(crate) type JobInsert = (
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    Option<String>,
);

/// A job ready to insert, with its id and times fixed.
pub(crate) fn job_insert(job: &NewJob, now: i64) -> JobInsert {
    (
        cairn_core::ids::new_id("job"),
        job.kind.clone(),
        job.run_id.clone(),
        job.payload.to_string(),
        job.priority,
        if job.run_at == 0 { now } else { job.run_at },
        job.dedup_key.clone(),
    )
}
