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

/// JobQueue: see the module documentation.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds a job; `None` when a live job with the same dedup key exists.
    async fn enqueue(&self, job: NewJob) -> Result<Option<String>, StoreError>;

    /// Claims the next ready job of one of `kinds` for `lease_ms`.
    async fn claim_job(&self, kinds: &[&str], lease_ms: i64) -> Result<Option<Job>, StoreError>;

    /// Claims the oldest ready run-driving job among the runs of a session,
    /// so interrupted earlier turns are finished before later ones.
    async fn claim_session_backlog(
        &self,
        session_id: &str,
        lease_ms: i64,
    ) -> Result<Option<Job>, StoreError>;

    /// Extends a lease. `false` if the lease was lost (expired and re-claimed).
    async fn heartbeat_job(&self, job: &Job, lease_ms: i64) -> Result<bool, StoreError>;

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
