//! The run journal on PostgreSQL. A step commit locks its run's row first,
//! so commits of one run (parallel tool results) take seqs one at a time,
//! and compares and swaps the session's version before appending messages.
//!
//! Not shared with SQLite (see `both/`): SQLite commits steps on its
//! rusqlite fast writer.

use async_trait::async_trait;
use cairn_core::{JournalEntry, now_ms};

use super::PgStore;
use super::queue::insert_job;
use super::runs::update_run_on;
use super::sessions::{append_message, bump_version};
use crate::journal::*;
use crate::{SessionLease, StoreError};

#[async_trait]
impl JournalStore for PgStore {
    async fn commit_step(
        &self,
        run_id: &str,
        lease: Option<&mut SessionLease>,
        step: StepCommit<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        let entries = encode_entries(&step.entries)?;
        let appends = !step.messages.is_empty() || step.compaction.is_some();
        let contents = encode_messages(&step.messages)?;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        let mut new_version = None;
        if appends {
            let Some(lease) = lease.as_deref() else {
                return Err(StoreError::LeaseRequired {
                    action: "appending messages",
                });
            };
            let Some(bumped) = bump_version(&mut tx, lease, now).await? else {
                drop(tx);
                return Err(self.conflict(&lease.session_id, lease.version).await);
            };
            new_version = Some(bumped);
            append_messages(&mut tx, lease, &contents, step.compaction.as_ref(), now).await?;
        }
        let mut seqs: Vec<i64> = Vec::with_capacity(entries.len());
        for (kind, ref_seq, ref_entry, payload) in &entries {
            let ref_seq = ref_seq.or_else(|| ref_entry.and_then(|i| seqs.get(i).copied()));
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO run_journal (run_id, seq, kind, ref_seq, payload, at)
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM run_journal WHERE run_id = $1
                 RETURNING seq",
            )
            .bind(run_id)
            .bind(kind)
            .bind(ref_seq)
            .bind(payload)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            seqs.push(seq);
        }
        if let Some(run) = step.run {
            update_run_on(&mut tx, run).await?;
        }
        for job in &step.jobs {
            insert_job(&mut tx, job).await?;
        }
        tx.commit().await?;
        if !step.jobs.is_empty() {
            self.wakeups.jobs_added();
        }
        if let (Some(v), Some(lease)) = (new_version, lease) {
            lease.version = v;
        }
        Ok(seqs)
    }

    async fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        let rows: Vec<JournalRow> = sqlx::query_as(
            "SELECT run_id, seq, kind, ref_seq, payload, at FROM run_journal WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        entries_from_rows(rows)
    }
}

/// Appends a step's messages (and its compaction) under the session lease.
async fn append_messages(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    lease: &SessionLease,
    contents: &[(&'static str, String)],
    compaction: Option<&NewCompaction>,
    now: i64,
) -> Result<(), StoreError> {
    for (role, content) in contents {
        append_message(tx, lease, role, content, now).await?;
    }
    if let Some(c) = compaction {
        sqlx::query(
            "INSERT INTO session_compactions
               (session_id, through_seq, summary, run_id, tokens_before, tokens_after, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (session_id, through_seq) DO UPDATE SET summary = excluded.summary,
               run_id = excluded.run_id, tokens_before = excluded.tokens_before,
               tokens_after = excluded.tokens_after, created_at = excluded.created_at",
        )
        .bind(&lease.session_id)
        .bind(c.through_seq)
        .bind(&c.summary)
        .bind(&lease.run_id)
        .bind(c.tokens_before as i64)
        .bind(c.tokens_after as i64)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
