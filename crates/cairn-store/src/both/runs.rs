// Runs on both backends: one turn of work in a session, with its status and
// totals.
// Compiled once per backend: see the store's `lib.rs`.

use crate::journal::{journal_run_end, run_end_payload};
use async_trait::async_trait;
use cairn_core::{RunRecord, RunStatus};

use super::queue::insert_job;
use crate::StoreError;
use crate::runs::*;

#[async_trait]
impl RunStore for Store {
    async fn create_run(&self, run: &RunRecord) -> Result<String, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let job_id = insert_run_with_job(&mut tx, run).await?;
        tx.commit().await?;
        self.jobs_added();
        Ok(job_id)
    }

    async fn update_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        crate::runs::not_an_end(run)?;
        update_run_on(&mut *self.writer().acquire().await?, run).await
    }

    async fn get_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError> {
        let exact: Option<RunRow> = sqlx::query_as(select_runs!("WHERE id = $1"))
            .bind(id_or_prefix)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = exact {
            return run_from_row(row);
        }
        let rows: Vec<RunRow> = sqlx::query_as(select_runs!(
            "WHERE substr(id, 1, length($1)) = $1 OR substr(id, 5, length($1)) = $1 LIMIT 2"
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
        runs_of(self, None, session_id, limit).await
    }

    async fn list_runs_of(
        &self,
        user: &str,
        session_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError> {
        runs_of(self, Some(user), session_id, limit).await
    }

    async fn running_progress(&self) -> Result<Vec<RunProgress>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT r.id, r.session_id, COALESCE((SELECT MAX(at) FROM run_journal j WHERE j.run_id = r.id), r.created_at)
             FROM runs r WHERE r.status = 'running'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (run_id, session_id, last_progress) in rows {
            let calls: Vec<String> = sqlx::query_scalar(
                "SELECT payload FROM run_journal WHERE run_id = $1 AND kind = 'tool_call'
                 AND seq > COALESCE((SELECT MAX(seq) FROM run_journal WHERE run_id = $1 AND kind = 'model_result'), 0)",
            )
            .bind(&run_id)
            .fetch_all(&self.pool)
            .await?;
            out.push(RunProgress {
                in_flight: tool_intents(&calls)?,
                run_id,
                session_id,
                last_progress,
            });
        }
        Ok(out)
    }

    async fn totals(&self) -> Result<(i64, f64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM sessions), (SELECT CAST(COALESCE(SUM(cost_usd), 0.0) AS DOUBLE PRECISION) FROM runs)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn run_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn cancel_queued_run(&self, run_id: &str, reason: &str) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let withdrawn = sqlx::query("DELETE FROM jobs WHERE run_id = $1 AND status = 'ready'")
            .bind(run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if withdrawn == 0 {
            return Ok(false);
        }
        let now = cairn_core::now_ms();
        sqlx::query("UPDATE runs SET status = 'cancelled', error = $1, finished_at = $2 WHERE id = $3 AND status IN ('queued', 'running')")
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

/// Saves a run's status and totals on `conn`, unless it has ended; a run
/// that ends here frees its session in the same transaction.
pub(crate) async fn update_run_on(
    conn: &mut <Db as sqlx::Database>::Connection,
    run: &RunRecord,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET status = $1, output = $2, error = $3, steps = $4, input_tokens = $5,
            output_tokens = $6, cost_usd = $7, finished_at = $8, model = $9
         WHERE id = $10 AND status NOT IN ('completed', 'failed', 'cancelled')",
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
    .execute(&mut *conn)
    .await?;
    crate::runs::changed_one(done.rows_affected(), &run.id)?;
    if run.status.is_terminal() {
        sqlx::query(crate::sessions::RELEASE_SESSION)
            .bind(&run.session_id)
            .bind(&run.id)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Inserts a queued run and its job, creating its session if new.
pub(crate) async fn queue_run_in_session(
    tx: &mut sqlx::Transaction<'static, Db>,
    run: &RunRecord,
) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO sessions (id, agent, version, created_at, updated_at) VALUES ($1, $2, 0, $3, $3)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&run.session_id)
    .bind(&run.agent)
    .bind(cairn_core::now_ms())
    .execute(&mut **tx)
    .await?;
    insert_run_with_job(tx, run).await
}

/// Inserts a queued run and the job that drives it, inside `tx`.
pub(crate) async fn insert_run_with_job(
    tx: &mut sqlx::Transaction<'static, Db>,
    run: &RunRecord,
) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO runs (id, session_id, agent, status, input, output, error, provider, model,
                steps, input_tokens, output_tokens, cost_usd, created_at, finished_at, user_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
    insert_job(tx, &job).await?.ok_or_else(|| {
        StoreError::corrupt("jobs", format!("a job for run {} already exists", run.id))
    })
}

/// Runs, newest first: `user`'s (all with `None`), of one session or all.
async fn runs_of(
    s: &Store,
    user: Option<&str>,
    session_id: Option<&str>,
    limit: i64,
) -> Result<Vec<RunRecord>, StoreError> {
    let rows: Vec<RunRow> = sqlx::query_as(select_runs!(
        "WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) AND (CAST($2 AS TEXT) IS NULL OR session_id = $2)
         ORDER BY created_at DESC, id DESC LIMIT $3"
    ))
    .bind(user)
    .bind(session_id)
    .bind(limit)
    .fetch_all(&s.pool)
    .await?;
    rows.into_iter().map(run_from_row).collect()
}
