// Sessions on both backends: the run lease and the version compare-and-swap
// are single UPDATEs, atomic under PostgreSQL's row locks and SQLite's one
// writer. Compiled once per backend: see the store's `lib.rs`.

use async_trait::async_trait;
use cairn_core::api::SessionInfo;
use cairn_core::{Message, now_ms};

use crate::StoreError;
use crate::sessions::*;

#[async_trait]
impl SessionStore for Store {
    async fn ensure_session(&self, id: &str, agent: &str) -> Result<SessionInfo, StoreError> {
        insert_session(self, id, agent, None).await
    }

    async fn get_session(&self, id: &str) -> Result<SessionInfo, StoreError> {
        let row: SessionRow = sqlx::query_as(
            "SELECT s.id, s.agent, s.version, s.created_at, s.updated_at, s.user_id,
                    (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS n
             FROM sessions s WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "session",
            id: id.to_string(),
        })?;
        Ok(session_from_row(row))
    }

    async fn list_sessions(&self, limit: i64) -> Result<Vec<SessionInfo>, StoreError> {
        sessions_of(self, None, limit).await
    }

    async fn ensure_session_of(
        &self,
        id: &str,
        agent: &str,
        user: &str,
    ) -> Result<SessionInfo, StoreError> {
        insert_session(self, id, agent, Some(user)).await
    }

    async fn list_sessions_of(
        &self,
        user: &str,
        limit: i64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        sessions_of(self, Some(user), limit).await
    }

    async fn try_acquire_session(
        &self,
        session_id: &str,
        run_id: &str,
        lease_ms: i64,
    ) -> Result<Option<SessionLease>, StoreError> {
        let _writing = self.lock_writes().await;
        let now = now_ms();
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET busy_run = $1, busy_owner = $2, busy_until = $3, version = version + 1, updated_at = $4
             WHERE id = $5 AND (busy_run IS NULL OR busy_until < $4 OR busy_run = $1)
               AND NOT EXISTS (
                   SELECT 1 FROM runs o, runs me
                   WHERE me.id = $1 AND o.session_id = me.session_id AND o.id != me.id
                     AND o.status IN ('queued', 'running')
                     AND (o.created_at < me.created_at OR (o.created_at = me.created_at AND o.id < me.id)))
             RETURNING version",
        )
        .bind(run_id)
        .bind(crate::owner::this_process())
        .bind(now + lease_ms)
        .bind(now)
        .bind(session_id)
        .fetch_optional(self.writer())
        .await?;
        Ok(version
            .map(|version| SessionLease::new(session_id.to_string(), run_id.to_string(), version)))
    }

    async fn renew_session_lease(
        &self,
        lease: &SessionLease,
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        let done =
            sqlx::query("UPDATE sessions SET busy_until = $1 WHERE id = $2 AND busy_run = $3")
                .bind(now_ms() + lease_ms)
                .bind(&lease.session_id)
                .bind(&lease.run_id)
                .execute(self.writer())
                .await?;
        if done.rows_affected() == 0 {
            return Err(self.conflict(&lease.session_id, lease.version).await);
        }
        Ok(())
    }

    async fn release_session(&self, lease: &SessionLease) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query(crate::sessions::RELEASE_SESSION)
            .bind(&lease.session_id)
            .bind(&lease.run_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn messages(&self, session_id: &str) -> Result<Vec<Message>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT content FROM messages WHERE session_id = $1 ORDER BY seq")
                .bind(session_id)
                .fetch_all(&self.pool)
                .await?;
        decode_messages(&rows)
    }

    async fn session_context(&self, session_id: &str) -> Result<SessionContext, StoreError> {
        let latest: Option<(i64, String)> = sqlx::query_as(
            "SELECT through_seq, summary FROM session_compactions WHERE session_id = $1
             ORDER BY through_seq DESC LIMIT 1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, content FROM messages WHERE session_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(session_id)
        .bind(latest.as_ref().map_or(0, |l| l.0))
        .fetch_all(&self.pool)
        .await?;
        context_from_rows(latest, rows)
    }

    async fn compaction_count(&self, session_id: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM session_compactions WHERE session_id = $1")
                .bind(session_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn session_user(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT user_id FROM sessions WHERE id = $1")
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    async fn run_messages(
        &self,
        session_id: &str,
        run_id: &str,
    ) -> Result<Vec<Message>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT content FROM messages WHERE session_id = $1 AND run_id = $2 ORDER BY seq",
        )
        .bind(session_id)
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        decode_messages(&rows)
    }

    async fn seed_messages(
        &self,
        session_id: &str,
        messages: &[Message],
    ) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        // The session row's lock orders this against every other append.
        let bumped: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET version = version + 1, updated_at = $1 WHERE id = $2
             AND NOT EXISTS (SELECT 1 FROM messages WHERE session_id = $2) RETURNING version",
        )
        .bind(now_ms())
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?;
        if bumped.is_none() {
            return Ok(false);
        }
        let now = now_ms();
        for (i, m) in messages.iter().enumerate() {
            let content =
                serde_json::to_string(m).map_err(|e| StoreError::corrupt("messages", e))?;
            sqlx::query("INSERT INTO messages (session_id, seq, run_id, role, content, created_at) VALUES ($1, $2, NULL, $3, $4, $5)")
                .bind(session_id)
                .bind(i as i64 + 1)
                .bind(m.role.as_str())
                .bind(content)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

impl Store {
    /// The error for a lost session lease: who changed it, or that it is gone.
    pub(crate) async fn conflict(&self, session_id: &str, expected: i64) -> StoreError {
        let found: Result<Option<i64>, _> =
            sqlx::query_scalar("SELECT version FROM sessions WHERE id = $1")
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await;
        conflict_error(session_id, expected, found.map_err(StoreError::from))
    }
}

/// Compare-and-swap of a session's version under `lease`, inside `tx`: the
/// row lock it takes orders the transaction against every other change to
/// the session. `None` when the lease was lost.
pub(crate) async fn bump_version(
    tx: &mut sqlx::Transaction<'static, Db>,
    lease: &SessionLease,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE sessions SET version = version + 1, updated_at = $1
         WHERE id = $2 AND version = $3 AND busy_run = $4 RETURNING version",
    )
    .bind(now)
    .bind(&lease.session_id)
    .bind(lease.version)
    .bind(&lease.run_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Appends one message (role and JSON) to the leased session, inside `tx`.
pub(crate) async fn append_message(
    tx: &mut sqlx::Transaction<'static, Db>,
    lease: &SessionLease,
    role: &str,
    content: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO messages (session_id, seq, run_id, role, content, created_at)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM messages WHERE session_id = $1",
    )
    .bind(&lease.session_id)
    .bind(&lease.run_id)
    .bind(role)
    .bind(content)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Returns session `id`, creating it for `agent` (as `user`'s, or the
/// owner's with `None`) if it does not exist; an existing one keeps its owner.
async fn insert_session(
    s: &Store,
    id: &str,
    agent: &str,
    user: Option<&str>,
) -> Result<SessionInfo, StoreError> {
    {
        let _writing = s.lock_writes().await;
        sqlx::query(
            "INSERT INTO sessions (id, agent, version, created_at, updated_at, user_id)
             VALUES ($1, $2, 0, $3, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(agent)
        .bind(now_ms())
        .bind(user)
        .execute(s.writer())
        .await?;
    }
    check_agent(s.get_session(id).await?, agent)
}

/// Sessions, most recently changed first: `user`'s, or all with `None`.
async fn sessions_of(
    s: &Store,
    user: Option<&str>,
    limit: i64,
) -> Result<Vec<SessionInfo>, StoreError> {
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT s.id, s.agent, s.version, s.created_at, s.updated_at, s.user_id,
                (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS n
         FROM sessions s WHERE (CAST($1 AS TEXT) IS NULL OR s.user_id = $1)
         ORDER BY s.updated_at DESC LIMIT $2",
    )
    .bind(user)
    .bind(limit)
    .fetch_all(&s.pool)
    .await?;
    Ok(rows.into_iter().map(session_from_row).collect())
}
