// The durable inbox and outbox of channels, on both backends. Accepting an
// inbound message is one transaction (inbox row, session, run and its job);
// only after it commits is the platform acknowledged, so a crash loses
// nothing and a redelivery (same platform id) changes nothing. Replies are
// enqueued once per run and retried until delivered or dead-lettered.
// Compiled once per backend: see the store's `lib.rs`.

use async_trait::async_trait;
use cairn_core::channel::{InboundMessage, OutboxItem};
use cairn_core::ids::new_id;
use cairn_core::{RunRecord, now_ms};

use super::runs::queue_run_in_session;
use super::sessions::{append_message, bump_version};
use crate::channels::*;
use crate::{RunStore, SessionLease, StoreError};

#[async_trait]
impl ChannelStore for Store {
    async fn accept_inbound(
        &self,
        msg: &InboundMessage,
        run: Option<&RunRecord>,
        refusal: Option<&str>,
    ) -> Result<Accepted, StoreError> {
        let Some(run) = run else {
            return self.refuse_stranger(msg, refusal).await;
        };
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let inserted = sqlx::query(
            "INSERT INTO channel_inbox (channel, platform_id, chat_id, thread, user_id, text, received_at, outcome, session_id, run_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(&msg.channel)
        .bind(&msg.platform_id)
        .bind(&msg.chat_id)
        .bind(&msg.thread)
        .bind(&msg.user_id)
        .bind(&msg.text)
        .bind(now_ms())
        .bind(&run.session_id)
        .bind(&run.id)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(Accepted::Duplicate);
        }
        queue_run_in_session(&mut tx, run).await?;
        // The session is its first person's (a run names its own).
        sqlx::query("UPDATE sessions SET user_id = COALESCE(user_id, $1) WHERE id = $2")
            .bind(run.user_id.as_deref())
            .bind(&run.session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.jobs_added();
        Ok(Accepted::Queued {
            run_id: run.id.clone(),
        })
    }

    async fn stranger_counts(&self, channel: &str) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT user_id, messages FROM channel_strangers WHERE channel = $1 ORDER BY user_id",
        )
        .bind(channel)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn awaiting_replies(&self, limit: i64) -> Result<Vec<AwaitingReply>, StoreError> {
        let rows: Vec<(String, String, String, Option<String>, String, String, String)> =
            sqlx::query_as(
                "SELECT i.channel, i.platform_id, i.chat_id, i.thread, i.user_id, i.text, i.run_id
                 FROM channel_inbox i JOIN runs r ON r.id = i.run_id
                 WHERE NOT i.replied AND i.run_id IS NOT NULL AND r.status IN ('completed', 'failed', 'cancelled')
                 LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(AwaitingReply {
                run: self.get_run(&r.6).await?,
                message: inbound_from_row((r.0, r.1, r.2, r.3, r.4, r.5)),
            });
        }
        Ok(out)
    }

    async fn enqueue_reply(
        &self,
        msg: &InboundMessage,
        out: &NewOutbound,
    ) -> Result<bool, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let marked = sqlx::query(
            "UPDATE channel_inbox SET replied = true WHERE channel = $1 AND platform_id = $2 AND NOT replied",
        )
        .bind(&msg.channel)
        .bind(&msg.platform_id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            return Ok(false);
        }
        insert_outbound(&mut tx, out, now_ms()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn enqueue_outbound(&self, out: &NewOutbound) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        insert_outbound(&mut tx, out, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_outbound(
        &self,
        channel: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(concat!(
            "SELECT ", outbox_columns!(), " FROM channel_outbox o WHERE o.status = 'pending' AND o.channel = $1 AND o.next_at <= $2
             AND NOT EXISTS (SELECT 1 FROM channel_outbox e WHERE e.status = 'pending' AND e.channel = o.channel
                             AND e.chat_id = o.chat_id AND (e.created_at < o.created_at OR (e.created_at = o.created_at AND e.id < o.id)))
             ORDER BY o.created_at, o.id LIMIT $3"
        ))
        .bind(channel)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(outbox_from_row).collect())
    }

    async fn list_outbound(
        &self,
        channel: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM channel_outbox WHERE CAST($1 AS TEXT) IS NULL OR channel = $1
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(channel)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(outbox_from_row).collect())
    }

    async fn outbound_attempt(
        &self,
        id: &str,
        result: Result<(), (String, Option<i64>)>,
    ) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        match result {
            Ok(()) => {
                sqlx::query(
                    "UPDATE channel_outbox SET status = 'sent', attempts = attempts + 1, sent_at = $1 WHERE id = $2",
                )
                .bind(now_ms())
                .bind(id)
                .execute(self.writer())
                .await?;
            }
            Err((error, retry_at)) => {
                sqlx::query(
                    "UPDATE channel_outbox SET attempts = attempts + 1, last_error = $1,
                        status = CASE WHEN CAST($2 AS BIGINT) IS NULL THEN 'dead' ELSE 'pending' END,
                        next_at = COALESCE($2, next_at)
                     WHERE id = $3",
                )
                .bind(error)
                .bind(retry_at)
                .bind(id)
                .execute(self.writer())
                .await?;
            }
        }
        Ok(())
    }

    async fn channel_cursor(&self, channel: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT cursor FROM channel_cursors WHERE channel = $1")
                .bind(channel)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_channel_cursor(&self, channel: &str, cursor: &str) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query(
            "INSERT INTO channel_cursors (channel, cursor) VALUES ($1, $2)
             ON CONFLICT (channel) DO UPDATE SET cursor = excluded.cursor",
        )
        .bind(channel)
        .bind(cursor)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn inbound_conversations(
        &self,
        channel: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT DISTINCT chat_id, thread FROM channel_inbox WHERE channel = $1")
                .bind(channel)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn inbound_for_run(&self, run_id: &str) -> Result<Option<InboundMessage>, StoreError> {
        let row: Option<InboundRow> = sqlx::query_as(
            "SELECT channel, platform_id, chat_id, thread, user_id, text FROM channel_inbox WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(inbound_from_row))
    }

    async fn absorb_queued_messages(
        &self,
        lease: &mut SessionLease,
    ) -> Result<Vec<String>, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        // The compare-and-swap first: its row lock orders this against
        // every other change to the session.
        let Some(version) = bump_version(&mut tx, lease, now).await? else {
            drop(tx);
            return Err(self.conflict(&lease.session_id, lease.version).await);
        };
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT r.id, r.input FROM runs r
             JOIN jobs j ON j.run_id = r.id AND j.status = 'ready'
             JOIN channel_inbox i ON i.run_id = r.id
             JOIN channel_inbox mine ON mine.run_id = $2
               AND mine.channel = i.channel AND mine.user_id = i.user_id
             WHERE r.session_id = $1 AND r.status = 'queued' AND r.id != $2
               AND r.created_at >= (SELECT created_at FROM runs WHERE id = $2)
             ORDER BY r.created_at, r.id",
        )
        .bind(&lease.session_id)
        .bind(&lease.run_id)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            // Nothing to absorb: the version stays as it was.
            return Ok(vec![]);
        }
        let mut texts = Vec::with_capacity(rows.len());
        for (run_id, input) in rows {
            if absorb_one(&mut tx, lease, &run_id, &input, now).await? {
                texts.push(input);
            }
        }
        tx.commit().await?;
        lease.version = version;
        Ok(texts)
    }

    async fn repoint_inbound(&self, old_run: &str, new_run: &str) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        sqlx::query("UPDATE channel_inbox SET run_id = $1 WHERE run_id = $2 AND NOT replied")
            .bind(new_run)
            .bind(old_run)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn outbound_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT status, COUNT(*) FROM channel_outbox GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn prune_channel_history(&self, before: i64) -> Result<u64, StoreError> {
        let _writing = self.lock_writes().await;
        let sent = sqlx::query("DELETE FROM channel_outbox WHERE status = 'sent' AND sent_at < $1")
            .bind(before)
            .execute(self.writer())
            .await?;
        let seen = sqlx::query(
            "DELETE FROM channel_inbox WHERE received_at < $1 AND (replied OR outcome = 'refused')",
        )
        .bind(before)
        .execute(self.writer())
        .await?;
        // A stranger quiet since then starts from zero (and is told again).
        let strangers = sqlx::query("DELETE FROM channel_strangers WHERE last_seen < $1")
            .bind(before)
            .execute(self.writer())
            .await?;
        Ok(sent.rows_affected() + seen.rows_affected() + strangers.rows_affected())
    }

    async fn inbound_count(&self, channel: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM channel_inbox WHERE channel = $1")
                .bind(channel)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

impl Store {
    /// Counts a stranger's message (its text is not kept) and queues the
    /// refusal unless they were told within the last hour.
    async fn refuse_stranger(
        &self,
        msg: &InboundMessage,
        refusal: Option<&str>,
    ) -> Result<Accepted, StoreError> {
        let _writing = self.lock_writes().await;
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let last_told: Option<i64> = sqlx::query_scalar(
            "INSERT INTO channel_strangers (channel, user_id, messages, first_seen, last_seen, last_told)
             VALUES ($1, $2, 1, $3, $3, NULL)
             ON CONFLICT (channel, user_id) DO UPDATE
             SET messages = channel_strangers.messages + 1, last_seen = $3
             RETURNING last_told",
        )
        .bind(&msg.channel)
        .bind(&msg.user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if last_told.is_none_or(|t| now - t >= STRANGER_TOLD_EVERY_MS) {
            insert_outbound(&mut tx, &refusal_for(msg, refusal), now).await?;
            sqlx::query(
                "UPDATE channel_strangers SET last_told = $1 WHERE channel = $2 AND user_id = $3",
            )
            .bind(now)
            .bind(&msg.channel)
            .bind(&msg.user_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Accepted::Refused)
    }
}

/// Folds one queued run's message into the running turn; `false` when an
/// executor claimed that run meanwhile.
async fn absorb_one(
    tx: &mut sqlx::Transaction<'static, Db>,
    lease: &SessionLease,
    run_id: &str,
    input: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let gone = sqlx::query("DELETE FROM jobs WHERE run_id = $1 AND status = 'ready'")
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    if gone.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE runs SET status = 'completed', output = $1, finished_at = $2 WHERE id = $3",
    )
    .bind(absorbed_note(&lease.run_id))
    .bind(now)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    let end = crate::journal::run_end_payload(cairn_core::RunStatus::Completed, None)?;
    crate::journal::journal_run_end(&mut **tx, run_id, &end, now).await?;
    sqlx::query("UPDATE channel_inbox SET replied = true WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    let content = serde_json::to_string(&cairn_core::Message::user_text(input))
        .map_err(|e| StoreError::corrupt("messages", e))?;
    append_message(tx, lease, "user", &content, now).await?;
    Ok(true)
}

async fn insert_outbound(
    tx: &mut sqlx::Transaction<'static, Db>,
    out: &NewOutbound,
    now: i64,
) -> Result<(), StoreError> {
    for (i, part) in out.parts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO channel_outbox (id, channel, chat_id, thread, text, run_id, status, next_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
        )
        .bind(new_id("out"))
        .bind(&out.channel)
        .bind(&out.chat_id)
        .bind(&out.thread)
        .bind(part)
        .bind(&out.run_id)
        .bind(now)
        // Parts of one reply keep their order through `created_at`.
        .bind(now + i as i64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
