// Schedules and their fire records, on both backends. A fire is one
// transaction: the fire record (unique per schedule and due time), the run
// and its job, and the schedule's `next_due` advanced by compare-and-set.
// Two schedulers racing on one store produce one run, whichever wins.
// Compiled once per backend: see the store's `lib.rs`.

use cairn_core::schedule::{FireRecord, ScheduleRecord};

use async_trait::async_trait;

use crate::StoreError;
use crate::schedules::*;

macro_rules! select_schedules {
    ($tail:literal) => {
        concat!(
            "SELECT id, agent, session_id, prompt, kind, spec, tz, catch_up, paused, next_due, created_at, created_by, heartbeat, user_id FROM schedules ",
            $tail
        )
    };
}

#[async_trait]
impl ScheduleStore for Store {
    async fn create_schedule(&self, s: &ScheduleRecord) -> Result<(), StoreError> {
        self.write_schedule(s, "").await
    }

    async fn upsert_schedule(&self, s: &ScheduleRecord) -> Result<(), StoreError> {
        self.write_schedule(
            s,
            "ON CONFLICT (id) DO UPDATE SET agent = $2, session_id = $3, prompt = $4, catch_up = $8,
                 created_by = $12, heartbeat = $13,
                 next_due = CASE WHEN schedules.kind = $5 AND schedules.spec = $6 AND schedules.tz = $7
                                 THEN schedules.next_due ELSE $10 END,
                 created_at = CASE WHEN schedules.kind = $5 AND schedules.spec = $6 AND schedules.tz = $7
                                   THEN schedules.created_at ELSE $11 END,
                 kind = $5, spec = $6, tz = $7",
        )
        .await
    }

    async fn prune_schedules(&self, created_by: &str, keep: &[String]) -> Result<u64, StoreError> {
        let _writing = self.lock_writes().await;
        self.delete_schedules_except(created_by, keep).await
    }

    async fn last_person_activity(&self, agent: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(created_at) FROM runs r WHERE agent = $1
             AND NOT EXISTS (SELECT 1 FROM schedule_fires f WHERE f.run_id = r.id)",
        )
        .bind(agent)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn session_cost_since(&self, session_id: &str, since: i64) -> Result<f64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost_usd), 0.0) AS DOUBLE PRECISION) FROM runs WHERE session_id = $1 AND created_at >= $2",
        )
        .bind(session_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn agent_cost_since(&self, agent: &str, since: i64) -> Result<f64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost_usd), 0.0) AS DOUBLE PRECISION) FROM runs WHERE agent = $1 AND created_at >= $2",
        )
        .bind(agent)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn user_cost_since(&self, user: &str, since: i64) -> Result<f64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost_usd), 0.0) AS DOUBLE PRECISION) FROM runs WHERE user_id = $1 AND created_at >= $2",
        )
        .bind(user)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn list_schedules(&self, agent: Option<&str>) -> Result<Vec<ScheduleRecord>, StoreError> {
        let agent = agent.map(str::to_string);
        self.read_schedules(
            select_schedules!(
                "WHERE CAST($1 AS TEXT) IS NULL OR agent = $1 ORDER BY next_due IS NULL, next_due, created_at"
            ),
            agent,
        )
        .await
    }

    async fn get_schedule(&self, id_or_prefix: &str) -> Result<ScheduleRecord, StoreError> {
        let found = self
            .read_schedules(
                select_schedules!(
                    "WHERE id = $1 OR substr(id, 1, length($1)) = $1 OR substr(id, 5, length($1)) = $1
                     ORDER BY id = $1 DESC LIMIT 2"
                ),
                Some(id_or_prefix.to_string()),
            )
            .await?;
        one_schedule(found, id_or_prefix)
    }

    async fn set_schedule_paused(
        &self,
        id: &str,
        paused: bool,
        next_due: Option<i64>,
    ) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query("UPDATE schedules SET paused = $1, next_due = $2 WHERE id = $3")
            .bind(paused)
            .bind(next_due)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn delete_schedule(&self, id: &str) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn due_schedules(&self, now: i64) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.read_schedules(
            select_schedules!(
                "WHERE NOT paused AND next_due IS NOT NULL AND next_due <= CAST($1 AS BIGINT)
                 ORDER BY next_due LIMIT 500"
            ),
            Some(now.to_string()),
        )
        .await
    }

    async fn fire_schedule(&self, fire: ScheduleFire<'_>) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let moved =
            sqlx::query("UPDATE schedules SET next_due = $1 WHERE id = $2 AND next_due = $3")
                .bind(fire.next_due)
                .bind(fire.schedule_id)
                .bind(fire.expected_due)
                .execute(&mut *tx)
                .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        for r in &fire.records {
            let done = sqlx::query(
                "INSERT INTO schedule_fires (schedule_id, due_at, handled_at, outcome, reason, run_id)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&r.schedule_id)
            .bind(r.due_at)
            .bind(r.handled_at)
            .bind(r.outcome.as_str())
            .bind(&r.reason)
            .bind(&r.run_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                // Already handled (a schedule re-created at the same due
                // time, a clock set back): never twice.
                return Ok(false);
            }
        }
        if let Some(run) = fire.run {
            super::runs::queue_run_in_session(&mut tx, run).await?;
        }
        tx.commit().await?;
        if fire.run.is_some() {
            self.jobs_added();
        }
        Ok(true)
    }

    async fn schedule_fires(
        &self,
        schedule_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FireRecord>, StoreError> {
        let rows: Vec<FireRow> = sqlx::query_as(
            "SELECT schedule_id, due_at, handled_at, outcome, reason, run_id FROM schedule_fires
             WHERE CAST($1 AS TEXT) IS NULL OR schedule_id = $1 ORDER BY due_at DESC LIMIT $2",
        )
        .bind(schedule_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        fires_from_rows(rows)
    }

    async fn prune_schedule_fires(&self, before: i64) -> Result<u64, StoreError> {
        let _writing = self.lock_writes().await;
        let done = sqlx::query("DELETE FROM schedule_fires WHERE due_at < $1")
            .bind(before)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    async fn scheduler_heartbeat(&self, owner: &str, now: i64) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query(
            "INSERT INTO scheduler_heartbeats (owner, seen_at) VALUES ($1, $2)
             ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(owner)
        .bind(now)
        .execute(self.writer())
        .await?;
        // One row per process ever started: forget those gone for a day.
        sqlx::query("DELETE FROM scheduler_heartbeats WHERE seen_at < $1")
            .bind(now - 86_400_000)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn scheduler_last_seen(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MAX(seen_at) FROM scheduler_heartbeats")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

impl Store {
    /// Inserts `s`, with `on_conflict` deciding what an existing id means
    /// (empty: an error).
    async fn write_schedule(
        &self,
        s: &ScheduleRecord,
        on_conflict: &str,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO schedules (id, agent, session_id, prompt, kind, spec, tz, catch_up, paused, next_due, created_at, created_by, heartbeat, user_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) {on_conflict}"
        );
        let heartbeat = heartbeat_json(s)?;
        let _writing = self.lock_writes().await;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&s.id)
            .bind(&s.agent)
            .bind(&s.session_id)
            .bind(&s.prompt)
            .bind(s.kind.as_str())
            .bind(&s.spec)
            .bind(&s.tz)
            .bind(s.catch_up.as_str())
            .bind(s.paused)
            .bind(s.next_due)
            .bind(s.created_at)
            .bind(&s.created_by)
            .bind(heartbeat)
            .bind(&s.user_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
