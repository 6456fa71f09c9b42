//! Runs: one turn of work in a session, with its status and totals.

use async_trait::async_trait;
use cairn_core::{JournalPayload, RunRecord, RunStatus, ToolIntent, Usage};

use crate::StoreError;

/// `SELECT <the columns of runs, as RunRow has them> FROM runs <tail>`, as
/// one static string (both backends).
macro_rules! select_runs {
    ($tail:literal) => {
        concat!(
            "SELECT id, session_id, agent, status, input, output, error, provider, model, ",
            "steps, input_tokens, output_tokens, cost_usd, created_at, finished_at, user_id FROM runs ",
            $tail
        )
    };
}
pub(crate) use select_runs;

/// One row of `runs` as selected by `select_runs!` (both backends decode
/// a tuple the same way).
pub(crate) type RunRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
    i64,
    i64,
    f64,
    i64,
    Option<i64>,
    Option<String>,
);

/// A run from its row.
pub(crate) fn run_from_row(r: RunRow) -> Result<RunRecord, StoreError> {
    let (id, session_id, agent, status, input, output, error, provider, model) =
        (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8);
    Ok(RunRecord {
        id,
        session_id,
        agent,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("runs", format!("unknown status {status:?}")))?,
        input,
        output,
        error,
        provider,
        model,
        steps: r.9.max(0) as u32,
        usage: Usage {
            input_tokens: r.10.max(0) as u64,
            output_tokens: r.11.max(0) as u64,
        },
        cost_usd: r.12,
        created_at: r.13,
        finished_at: r.14,
        user_id: r.15,
    })
}

/// Decodes stored tool intents (the in-flight calls of a run).
pub(crate) fn tool_intents(payloads: &[String]) -> Result<Vec<ToolIntent>, StoreError> {
    payloads
        .iter()
        .map(|p| match JournalPayload::decode("tool_call", p) {
            Ok(JournalPayload::ToolCall(intent)) => Ok(intent),
            Ok(_) => Err(StoreError::corrupt(
                "run_journal",
                "tool_call decoded as another kind",
            )),
            Err(e) => Err(StoreError::corrupt("run_journal", e)),
        })
        .collect()
}

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

    /// Saves the status and totals of a run in progress. Refused for a run
    /// that has ended (`RunEnded`) and for an ending status
    /// (`EndNotJournaled`): a run ends through `commit_step` with its
    /// `RunEnd` entry.
    async fn update_run(&self, run: &RunRecord) -> Result<(), StoreError>;

    /// A run by id or by a unique id prefix (as users type them).
    async fn get_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError>;

    /// Runs, newest first, optionally of one session.
    async fn list_runs(
        &self,
        session_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// `user`'s runs, newest first, optionally of one session.
    async fn list_runs_of(
        &self,
        user: &str,
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

/// Refuses a plain update that would end a run (see `update_run`).
pub(crate) fn not_an_end(run: &RunRecord) -> Result<(), StoreError> {
    if run.status.is_terminal() {
        return Err(StoreError::EndNotJournaled {
            run_id: run.id.clone(),
        });
    }
    Ok(())
}

/// `RunEnded` when an update of `run_id` matched no run in progress.
pub(crate) fn changed_one(rows: u64, run_id: &str) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::RunEnded {
            run_id: run_id.to_string(),
        });
    }
    Ok(())
}

/// Exactly one run among the rows an id prefix matched.
pub(crate) fn one_run(mut rows: Vec<RunRow>, prefix: &str) -> Result<RunRecord, StoreError> {
    match rows.len() {
        0 => Err(StoreError::NotFound {
            what: "run",
            id: prefix.to_string(),
        }),
        1 => run_from_row(rows.remove(0)),
        n => Err(StoreError::Ambiguous {
            what: "run",
            prefix: prefix.to_string(),
            count: n,
        }),
    }
}

/// The job that drives `run`.
pub(crate) fn run_job(run: &RunRecord) -> crate::NewJob {
    crate::NewJob {
        kind: crate::kinds::ADVANCE_RUN.into(),
        run_id: Some(run.id.clone()),
        payload: serde_json::json!({}),
        run_at: run.created_at,
        dedup_key: Some(format!("run:{}", run.id)),
        ..Default::default()
    }
}
