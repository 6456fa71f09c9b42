//! Runs: one turn of work in a session, with its status and totals.

use async_trait::async_trait;
use cairn_core::RunRecord;
use cairn_core::ToolIntent;

use crate::StoreError;

/// A running run's last sign of progress.
#[derive(Debug, Clone)]
pub struct RunProgress {
    /// Run.
    pub run_id: String,
    /// Its session.
    pub session_id: String,
    /// Time of its newest journal entry (ms), or its creation.
    pub last_progress: i64,
    /// The tool intents of its newest step.
    pub in_flight: Vec<ToolIntent>,
}

/// RunStore: see the module documentation.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Records a new run and the job that will drive it, atomically: a run
    /// never exists without a way to finish. Returns the job id.
    async fn create_run(&self, run: &RunRecord) -> Result<String, StoreError>;

    /// Saves a run's status and totals.
    async fn update_run(&self, run: &RunRecord) -> Result<(), StoreError>;

    /// A run by id or by a unique id prefix (as users type them).
    async fn get_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError>;

    /// Runs, newest first, optionally of one session.
    async fn list_runs(
        &self,
        session_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// Runs in progress with their last sign of progress (their newest
    /// journal entry's time, or their creation) and the tool calls of
    /// their newest step, for the watchdog.
    async fn running_progress(&self) -> Result<Vec<RunProgress>, StoreError>;

    /// Sessions and total spend across all runs, for `cairn status`.
    async fn totals(&self) -> Result<(i64, f64), StoreError>;

    /// Counts of runs per status, for `cairn status`.
    async fn run_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Cancels a run that no executor has claimed yet: the run ends as
    /// cancelled and its job is withdrawn. `false` if it was already claimed
    /// (or finished).
    async fn cancel_queued_run(&self, run_id: &str, reason: &str) -> Result<bool, StoreError>;
}
