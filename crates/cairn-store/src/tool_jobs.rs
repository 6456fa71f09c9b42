//! Tool calls run on cluster workers: submitted by the run that makes
//! them, leased by a coordinator for the worker it sends them to, finished
//! under a fencing attempt, and made ready again (idempotent) or `unknown`
//! (side-effecting) when their worker or coordinator is lost.

use async_trait::async_trait;
use cairn_core::cluster::{NewToolJob, ToolJobRecord, ToolJobStatus};
use cairn_core::{SandboxProfile, ToolOutput};

use crate::StoreError;

/// ToolJobStore: see the module documentation.
#[async_trait]
pub trait ToolJobStore: Send + Sync {
    /// Submits a job; if one with the same id exists (a resumed run), it
    /// is left as it is. Returns the stored job either way.
    async fn submit_tool_job(&self, job: &NewToolJob) -> Result<ToolJobRecord, StoreError>;

    /// Submits a job already leased (attempt 1) to `lease.node`, a worker
    /// the submitting coordinator has room on: one commit where submitting,
    /// reading and leasing take three. `None`, with nothing written, if a
    /// job with the same id exists (a resumed run) or the run's earlier
    /// calls in the job's named workspace went to another node.
    async fn submit_leased_tool_job(
        &self,
        job: &NewToolJob,
        lease: &JobLease<'_>,
    ) -> Result<Option<ToolJobRecord>, StoreError>;

    /// One job.
    async fn tool_job(&self, id: &str) -> Result<Option<ToolJobRecord>, StoreError>;

    /// Ready jobs, oldest first, each with the node its named workspace
    /// lives on for its run (where an earlier call of the run used it).
    async fn ready_tool_jobs(&self, limit: i64) -> Result<Vec<ReadyToolJob>, StoreError>;

    /// Leases a ready job to `node` on behalf of coordinator `owner` until
    /// `until`; its new attempt, or `None` if another took it first.
    async fn lease_tool_job(
        &self,
        id: &str,
        node: &str,
        owner: &str,
        until: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// Extends the leases of these attempts (the jobs worker `node` says it
    /// runs), taking them over for `owner` (the coordinator it is connected
    /// to now); returns the attempts that no longer hold their jobs (given
    /// up, cancelled, finished, or leased to another node), which the
    /// worker should stop.
    async fn renew_tool_leases(
        &self,
        jobs: &[cairn_core::cluster::JobRef],
        node: &str,
        owner: &str,
        until: i64,
    ) -> Result<Vec<cairn_core::cluster::JobRef>, StoreError>;

    /// Cancels a job not final yet (its run was cancelled): it is final as
    /// `cancelled` and never dispatched again. The node and attempt that
    /// held it, if a worker had it, so that worker can be told to stop.
    async fn cancel_tool_job(&self, id: &str) -> Result<Option<(String, i64)>, StoreError>;

    /// Records the result of attempt `attempt` of worker `node`; `false`
    /// (nothing changes) if that attempt no longer holds the job or the job
    /// is leased to another node (a worker cannot answer for another).
    async fn finish_tool_job(
        &self,
        id: &str,
        node: &str,
        attempt: i64,
        output: &ToolOutput,
    ) -> Result<bool, StoreError>;

    /// Attempt `attempt` was lost (its worker went away): the job is ready
    /// again if idempotent, else final as `unknown`. The new status, or
    /// `None` if that attempt no longer held it.
    async fn lose_tool_job(
        &self,
        id: &str,
        attempt: i64,
        why: &str,
    ) -> Result<Option<ToolJobStatus>, StoreError>;

    /// Leases past their end (a coordinator died) are lost as above; ready
    /// jobs past their deadline expire. How many changed.
    async fn expire_tool_jobs(&self, now: i64) -> Result<u64, StoreError>;

    /// Jobs not final, then the latest final ones, up to `limit`.
    async fn list_tool_jobs(&self, limit: i64) -> Result<Vec<ToolJobRecord>, StoreError>;
}

/// A lease taken at submission.
#[derive(Debug, Clone, Copy)]
pub struct JobLease<'a> {
    /// The worker.
    pub node: &'a str,
    /// The coordinator it is connected to.
    pub owner: &'a str,
    /// When the lease runs out unrenewed (ms).
    pub until: i64,
}

/// A job waiting for a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyToolJob {
    /// The job.
    pub job: ToolJobRecord,
    /// The node that ran the latest earlier call of the same run in the
    /// same named workspace: the files the call expects are there.
    pub affinity: Option<String>,
}

/// `SELECT` of `ToolJobRow`'s columns and the job's affinity (the node of
/// the latest earlier call of its run in its named workspace) for the
/// first `$limit` ready jobs (`$limit` written as the backend's
/// placeholder): one round trip per dispatch pass.
macro_rules! select_ready_tool_jobs {
    ($limit:literal) => {
        concat!(
            "SELECT t.id, t.run_id, t.tool, t.input, t.requires, t.workspace, t.sandbox,
                 t.idempotent, t.deadline, t.traceparent, t.status, t.attempt, t.node, t.output,
                 t.created_at, t.finished_at,
                 CASE WHEN t.workspace IS NULL THEN NULL ELSE
                   (SELECT p.node FROM tool_jobs p
                    WHERE p.run_id = t.run_id AND p.workspace = t.workspace
                      AND p.node IS NOT NULL AND p.id <> t.id
                    ORDER BY p.created_at DESC, p.id DESC LIMIT 1) END
             FROM tool_jobs t WHERE t.status = 'ready' ORDER BY t.created_at, t.id LIMIT ",
            $limit
        )
    };
}
pub(crate) use select_ready_tool_jobs;

/// A row of `select_ready_tool_jobs!` decoded (the query has 17 columns,
/// past what sqlx decodes as a tuple).
pub(crate) fn ready_from_row<R>(r: &R) -> Result<ReadyToolJob, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    bool: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let row: ToolJobRow = (
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get(7)?,
        r.try_get(8)?,
        r.try_get(9)?,
        r.try_get(10)?,
        r.try_get(11)?,
        r.try_get(12)?,
        r.try_get(13)?,
        r.try_get(14)?,
        r.try_get(15)?,
    );
    Ok(ReadyToolJob {
        job: decode_tool_job(row)?,
        affinity: r.try_get(16)?,
    })
}

/// What a job lost with its worker says to the model.
pub(crate) fn unknown_output(why: &str) -> String {
    serde_json::to_string(&ToolOutput::error(format!(
        "outcome unknown: {why}; this call changes things, so it was not run again — check its effect before repeating it"
    )))
    .unwrap_or_default()
}

/// What a cancelled job says.
pub(crate) fn cancelled_output() -> String {
    serde_json::to_string(&ToolOutput::error(
        "cancelled: the run was cancelled while a worker had this call; the worker was told to stop it",
    ))
    .unwrap_or_default()
}

/// What a job no worker took says.
pub(crate) fn expired_output() -> String {
    serde_json::to_string(&ToolOutput::error(
        "no connected worker with the labels this call requires took it before its deadline (see cairn cluster nodes)",
    ))
    .unwrap_or_default()
}

/// A stored tool job row: id, run_id, tool, input, requires, workspace,
/// sandbox, idempotent, deadline, traceparent, status, attempt, node,
/// output, created_at, finished_at.
pub(crate) type ToolJobRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    bool,
    i64,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

/// `SELECT` of `ToolJobRow`'s columns from `tool_jobs`, then `$rest`.
macro_rules! select_tool_jobs {
    ($rest:literal) => {
        concat!(
            "SELECT id, run_id, tool, input, requires, workspace, sandbox, idempotent, deadline,
             traceparent, status, attempt, node, output, created_at, finished_at FROM tool_jobs ",
            $rest
        )
    };
}
pub(crate) use select_tool_jobs;

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt("tool_jobs", e)
}

/// A job from its row.
pub(crate) fn decode_tool_job(r: ToolJobRow) -> Result<ToolJobRecord, StoreError> {
    let sandbox: SandboxProfile =
        serde_json::from_value(serde_json::Value::String(r.6)).map_err(corrupt)?;
    Ok(ToolJobRecord {
        job: NewToolJob {
            id: r.0,
            run_id: r.1,
            tool: r.2,
            input: serde_json::from_str(&r.3).map_err(corrupt)?,
            requires: serde_json::from_str(&r.4).map_err(corrupt)?,
            workspace: r.5,
            sandbox,
            idempotent: r.7,
            deadline_ms: r.8,
            traceparent: r.9,
        },
        status: ToolJobStatus::parse(&r.10).ok_or_else(|| corrupt(format!("status {:?}", r.10)))?,
        attempt: r.11,
        node: r.12,
        output: r
            .13
            .map(|o| serde_json::from_str(&o))
            .transpose()
            .map_err(corrupt)?,
        created_at: r.14,
        finished_at: r.15,
    })
}

/// The columns a submission writes, encoded.
pub(crate) struct Encoded {
    pub input: String,
    pub requires: String,
    pub sandbox: &'static str,
}

/// Binds a submission's first ten columns (`id` … `traceparent`, in table
/// order): the ready and the leased insert share them on both backends.
pub(crate) fn bind_submission<'q, DB, O>(
    q: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>,
    job: &'q NewToolJob,
    e: &'q Encoded,
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(job.id.as_str())
        .bind(job.run_id.as_str())
        .bind(job.tool.as_str())
        .bind(e.input.as_str())
        .bind(e.requires.as_str())
        .bind(job.workspace.as_deref())
        .bind(e.sandbox)
        .bind(job.idempotent)
        .bind(job.deadline_ms)
        .bind(job.traceparent.as_deref())
}

/// Encodes a submission.
pub(crate) fn encode(job: &NewToolJob) -> Result<Encoded, StoreError> {
    Ok(Encoded {
        input: serde_json::to_string(&job.input).map_err(corrupt)?,
        requires: serde_json::to_string(&job.requires).map_err(corrupt)?,
        sandbox: job.sandbox.as_str(),
    })
}

/// An output as stored.
pub(crate) fn encode_output(o: &ToolOutput) -> Result<String, StoreError> {
    serde_json::to_string(o).map_err(corrupt)
}
