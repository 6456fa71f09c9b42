//! Runs: one turn of work in a session, with its status and totals.

use crate::journal::{journal_run_end, run_end_payload};
use cairn_core::{RunRecord, RunStatus};
use sqlx::Row;

use async_trait::async_trait;

use super::SqliteStore;
use crate::StoreError;
use crate::runs::*;

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, run: &RunRecord) -> Result<String, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let job_id = insert_run_with_job(&mut tx, run).await?;
        tx.commit().await?;
        Ok(job_id)
    }

    async fn update_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        crate::runs::not_an_end(run)?;
        update_run_tx(&mut *self.writer.acquire().await?, run).await
    }

    async fn get_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError> {
        let exact: Option<RunRow> = sqlx::query_as(select_runs!("WHERE id = ?"))
            .bind(id_or_prefix)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = exact {
            return run_from_row(row);
        }
        let rows: Vec<RunRow> = sqlx::query_as(select_runs!(
            "WHERE substr(id, 1, length(?1)) = ?1 OR substr(id, 5, length(?1)) = ?1 LIMIT 2"
        ))
        .bind(id_or_prefix)
        .fetch_all(&self.pool)
        .await?;
        one_run(rows, id_or_prefix)
    }

    async fn list_runs(
        &self,
        session_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows: Vec<RunRow> = sqlx::query_as(select_runs!(
            "WHERE (?1 IS NULL OR session_id = ?1) ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))
        .bind(session_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(run_from_row).collect()
    }

    async fn running_progress(&self) -> Result<Vec<RunProgress>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.session_id, COALESCE((SELECT MAX(at) FROM run_journal j WHERE j.run_id = r.id), r.created_at) AS last
             FROM runs r WHERE r.status = 'running'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let run_id: String = r.try_get("id")?;
            // Tool intents after the newest model result: the calls in flight.
            let calls: Vec<String> = sqlx::query_scalar(
                "SELECT payload FROM run_journal WHERE run_id = ?1 AND kind = 'tool_call'
                 AND seq > COALESCE((SELECT MAX(seq) FROM run_journal WHERE run_id = ?1 AND kind = 'model_result'), 0)",
            )
            .bind(&run_id)
            .fetch_all(&self.pool)
            .await?;
            let in_flight = tool_intents(&calls)?;
            out.push(RunProgress {
                session_id: r.try_get("session_id")?,
                last_progress: r.try_get("last")?,
                in_flight,
                run_id,
            });
        }
        Ok(out)
    }

    async fn totals(&self) -> Result<(i64, f64), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM sessions) AS sessions, (SELECT COALESCE(SUM(cost_usd), 0.0) FROM runs) AS cost",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("sessions")?, row.try_get("cost")?))
    }

    async fn run_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    async fn cancel_queued_run(&self, run_id: &str, reason: &str) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let withdrawn = sqlx::query("DELETE FROM jobs WHERE run_id = ? AND status = 'ready'")
            .bind(run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if withdrawn == 0 {
            return Ok(false);
        }
        let now = cairn_core::now_ms();
        sqlx::query("UPDATE runs SET status = 'cancelled', error = ?, finished_at = ? WHERE id = ? AND status IN ('queued', 'running')")
            .bind(reason)
            .bind(now)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        let end = run_end_payload(RunStatus::Cancelled, Some(reason.to_string()))?;
        journal_run_end(&mut *tx, run_id, &end, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Saves a run's status and totals on `conn`, unless it has ended.
pub(crate) async fn update_run_tx(
    conn: &mut sqlx::SqliteConnection,
    run: &RunRecord,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET status = ?, output = ?, error = ?, steps = ?, input_tokens = ?,
            output_tokens = ?, cost_usd = ?, finished_at = ?, model = ?
         WHERE id = ? AND status NOT IN ('completed', 'failed', 'cancelled')",
    )
    .bind(run.status.as_str())
    .bind(&run.output)
    .bind(&run.error)
    .bind(run.steps as i64)
    .bind(run.usage.input_tokens as i64)
    .bind(run.usage.output_tokens as i64)
    .bind(run.cost_usd)
    .bind(run.finished_at)
    .bind(&run.model)
    .bind(&run.id)
    .execute(conn)
    .await?;
    crate::runs::changed_one(done.rows_affected(), &run.id)
}

/// Inserts a queued run and its job, creating its session if new, inside
/// `tx` (for runs the server starts itself: schedules, channel messages).
pub(crate) async fn queue_run_in_session(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    run: &RunRecord,
) -> Result<String, StoreError> {
    let now = cairn_core::now_ms();
    sqlx::query(
        "INSERT INTO sessions (id, agent, version, created_at, updated_at) VALUES (?, ?, 0, ?, ?)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&run.session_id)
    .bind(&run.agent)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    insert_run_with_job(tx, run).await
}

/// Inserts a queued run and the job that drives it, inside `tx`.
pub(crate) async fn insert_run_with_job(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    run: &RunRecord,
) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO runs (id, session_id, agent, status, input, output, error, provider, model,
                steps, input_tokens, output_tokens, cost_usd, created_at, finished_at, user_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&run.id)
    .bind(&run.session_id)
    .bind(&run.agent)
    .bind(run.status.as_str())
    .bind(&run.input)
    .bind(&run.output)
    .bind(&run.error)
    .bind(&run.provider)
    .bind(&run.model)
    .bind(run.steps as i64)
    .bind(run.usage.input_tokens as i64)
    .bind(run.usage.output_tokens as i64)
    .bind(run.cost_usd)
    .bind(run.created_at)
    .bind(run.finished_at)
    .bind(&run.user_id)
    .execute(&mut **tx)
    .await?;
    let job = run_job(run);
    let job_id = super::queue::insert_job(tx, &job).await?.ok_or_else(|| {
        StoreError::corrupt("jobs", format!("a job for run {} already exists", run.id))
    })?;
    Ok(job_id)
}
