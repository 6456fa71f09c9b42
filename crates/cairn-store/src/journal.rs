//! The append-only run journal, and the one transaction that records a step:
//! journal entries, the session message and the run's totals commit together
//! or not at all.

use cairn_core::{JournalEntry, JournalKind, Message, RunRecord, now_ms};
use sqlx::Row;

use crate::runs::update_run_tx;
use crate::sessions::append_message_tx;
use crate::{SessionLease, Store, StoreError};

/// A journal entry about to be written.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// What it records.
    pub kind: JournalKind,
    /// For results: the intent's seq.
    pub ref_seq: Option<i64>,
    /// Details.
    pub payload: serde_json::Value,
}

/// Everything one step changes, committed atomically.
#[derive(Debug, Default)]
pub struct StepCommit<'a> {
    /// Journal entries to append, in order.
    pub entries: Vec<NewEntry>,
    /// A message to append to the session (needs the session lease).
    pub message: Option<&'a Message>,
    /// The run's new status and totals.
    pub run: Option<&'a RunRecord>,
}

impl Store {
    /// Commits one step for `run_id`; returns the seqs given to `entries`.
    /// Fails with `VersionConflict` (and writes nothing) if the session lease
    /// was lost.
    pub async fn commit_step(
        &self,
        run_id: &str,
        lease: Option<&mut SessionLease>,
        step: StepCommit<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        let now = now_ms();
        // One journal entry alone is one statement, atomic by itself: skip the
        // transaction's extra round trips (this is most steps' intent/result).
        if let ([entry], None, None) = (step.entries.as_slice(), step.message, step.run) {
            return Ok(vec![
                insert_entry(&mut *self.writer.acquire().await?, run_id, entry, now).await?,
            ]);
        }
        let mut tx = self.write_tx().await?;
        let mut seqs = Vec::with_capacity(step.entries.len());
        for entry in &step.entries {
            seqs.push(insert_entry(&mut tx, run_id, entry, now).await?);
        }
        if let Some(message) = step.message {
            let Some(lease) = lease else {
                return Err(StoreError::corrupt(
                    "messages",
                    "a message append needs the session lease",
                ));
            };
            let expected = lease.version;
            if !append_message_tx(&mut tx, lease, message).await? {
                drop(tx);
                return Err(self.conflict(&lease.session_id, expected).await);
            }
        }
        if let Some(run) = step.run {
            update_run_tx(&mut tx, run).await?;
        }
        tx.commit().await?;
        Ok(seqs)
    }

    /// The journal of a run, in order.
    pub async fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, seq, kind, ref_seq, payload, at FROM run_journal WHERE run_id = ? ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                let payload: String = r.try_get("payload")?;
                Ok(JournalEntry {
                    run_id: r.try_get("run_id")?,
                    seq: r.try_get("seq")?,
                    kind: JournalKind::parse(&kind).ok_or_else(|| {
                        StoreError::corrupt("run_journal", format!("unknown kind {kind:?}"))
                    })?,
                    ref_seq: r.try_get("ref_seq")?,
                    payload: serde_json::from_str(&payload)
                        .map_err(|e| StoreError::corrupt("run_journal", e))?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }
}

async fn insert_entry(
    conn: &mut sqlx::SqliteConnection,
    run_id: &str,
    entry: &NewEntry,
    now: i64,
) -> Result<i64, StoreError> {
    let payload =
        serde_json::to_string(&entry.payload).map_err(|e| StoreError::corrupt("run_journal", e))?;
    Ok(sqlx::query_scalar(
        "INSERT INTO run_journal (run_id, seq, kind, ref_seq, payload, at)
         SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM run_journal WHERE run_id = ?1
         RETURNING seq",
    )
    .bind(run_id)
    .bind(entry.kind.as_str())
    .bind(entry.ref_seq)
    .bind(payload)
    .bind(now)
    .fetch_one(conn)
    .await?)
}
