//! The append-only run journal, and the one transaction that records a step:
//! journal entries, the session message and the run's totals commit together
//! or not at all.
//!
//! Not shared with PostgreSQL (see `both/`): a step commits here on the
//! rusqlite fast writer (one prepared transaction, no async round trips),
//! there through sqlx under the run's row lock.

use cairn_core::{JournalEntry, now_ms};

use async_trait::async_trait;

use super::SqliteStore;
use crate::journal::*;
use crate::{SessionLease, StoreError};
use rusqlite::OptionalExtension;

/// Why a step commit rolled back.
enum Refused {
    /// The session lease was lost (or none was given).
    Lease,
    /// The run had already ended.
    Ended,
}

/// A committed step: its entries' seqs, and the session's new version when
/// it appended messages.
type Committed = (Vec<i64>, Option<i64>);

/// Messages a step appends, with the lease they are appended under.
struct Append {
    contents: Vec<(&'static str, String)>,
    session_id: String,
    holder: String,
    version: i64,
    compaction: Option<NewCompaction>,
}

/// A step, owned, for the writer thread.
struct Step {
    run_id: String,
    now: i64,
    entries: Vec<EncodedEntry>,
    append: Option<Append>,
    run: Option<cairn_core::RunRecord>,
    jobs: Vec<crate::queue::JobInsert>,
}

impl Step {
    fn new(
        run_id: &str,
        lease: Option<&SessionLease>,
        step: &StepCommit<'_>,
    ) -> Result<Step, StoreError> {
        let now = now_ms();
        let append = if step.messages.is_empty() && step.compaction.is_none() {
            None
        } else {
            let Some(lease) = lease else {
                return Err(StoreError::LeaseRequired {
                    action: "appending messages",
                });
            };
            Some(Append {
                contents: encode_messages(&step.messages)?,
                session_id: lease.session_id.clone(),
                holder: lease.run_id.clone(),
                version: lease.version,
                compaction: step.compaction.clone(),
            })
        };
        Ok(Step {
            run_id: run_id.to_string(),
            now,
            entries: encode_entries(&step.entries)?,
            append,
            run: step.run.cloned(),
            jobs: step
                .jobs
                .iter()
                .map(|j| crate::queue::job_insert(j, now))
                .collect(),
        })
    }

    /// The whole step in one transaction: the journal's seqs and the
    /// session's new version, or why it was refused (and rolled back).
    fn apply(
        &self,
        conn: &mut rusqlite::Connection,
    ) -> rusqlite::Result<Result<Committed, Refused>> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seqs = self.journal(&tx)?;
        let mut new_version = None;
        if let Some(append) = &self.append {
            let Some(bumped) = append.apply(&tx, self.now)? else {
                // Lease lost: the transaction rolls back on drop.
                return Ok(Err(Refused::Lease));
            };
            new_version = Some(bumped);
        }
        if let Some(run) = &self.run
            && !save_run(&tx, run)?
        {
            return Ok(Err(Refused::Ended));
        }
        for (id, kind, job_run, payload, priority, run_at, dedup) in &self.jobs {
            tx.execute(
                super::queue::INSERT_JOB,
                rusqlite::params![
                    id, kind, job_run, payload, priority, run_at, dedup, self.now
                ],
            )?;
        }
        tx.commit()?;
        Ok(Ok((seqs, new_version)))
    }

    /// Appends the entries; a result refers to its intent by seq, or by its
    /// index among this step's entries.
    fn journal(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<Vec<i64>> {
        let mut insert = tx.prepare_cached(
            "INSERT INTO run_journal (run_id, seq, kind, ref_seq, payload, at)
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM run_journal WHERE run_id = ?1
             RETURNING seq",
        )?;
        let mut seqs = Vec::with_capacity(self.entries.len());
        for (kind, ref_seq, ref_entry, payload) in &self.entries {
            let ref_seq = ref_seq.or_else(|| ref_entry.and_then(|i| seqs.get(i).copied()));
            let seq: i64 = insert.query_row(
                rusqlite::params![self.run_id, kind, ref_seq, payload, self.now],
                |r| r.get(0),
            )?;
            seqs.push(seq);
        }
        Ok(seqs)
    }
}

impl Append {
    /// Bumps the session's version (compare and swap) and appends; `None`
    /// when the lease was lost.
    fn apply(&self, tx: &rusqlite::Transaction<'_>, now: i64) -> rusqlite::Result<Option<i64>> {
        let bumped: Option<i64> = tx
            .query_row(
                "UPDATE sessions SET version = version + 1, updated_at = ?1
                 WHERE id = ?2 AND version = ?3 AND busy_run = ?4 RETURNING version",
                rusqlite::params![now, self.session_id, self.version, self.holder],
                |r| r.get(0),
            )
            .optional()?;
        if bumped.is_none() {
            return Ok(None);
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO messages (session_id, seq, run_id, role, content, created_at)
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM messages WHERE session_id = ?1",
        )?;
        for (role, content) in &self.contents {
            insert.execute(rusqlite::params![
                self.session_id,
                self.holder,
                role,
                content,
                now
            ])?;
        }
        if let Some(c) = &self.compaction {
            tx.execute(
                "INSERT INTO session_compactions
                   (session_id, through_seq, summary, run_id, tokens_before, tokens_after, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (session_id, through_seq) DO UPDATE SET summary = excluded.summary,
                   run_id = excluded.run_id, tokens_before = excluded.tokens_before,
                   tokens_after = excluded.tokens_after, created_at = excluded.created_at",
                rusqlite::params![
                    self.session_id,
                    c.through_seq,
                    c.summary,
                    self.holder,
                    c.tokens_before as i64,
                    c.tokens_after as i64,
                    now
                ],
            )?;
        }
        Ok(bumped)
    }
}

/// Saves the run's status and totals unless it has ended (`false`); a run
/// that ends frees its session in the same commit, whoever ends it.
fn save_run(tx: &rusqlite::Transaction<'_>, run: &cairn_core::RunRecord) -> rusqlite::Result<bool> {
    let changed = tx.execute(
        "UPDATE runs SET status = ?1, output = ?2, error = ?3, steps = ?4, input_tokens = ?5,
            output_tokens = ?6, cost_usd = ?7, finished_at = ?8, model = ?9
         WHERE id = ?10 AND status NOT IN ('completed', 'failed', 'cancelled')",
        rusqlite::params![
            run.status.as_str(),
            run.output,
            run.error,
            run.steps as i64,
            run.usage.input_tokens as i64,
            run.usage.output_tokens as i64,
            run.cost_usd,
            run.finished_at,
            run.model,
            run.id
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    if run.status.is_terminal() {
        tx.execute(
            crate::sessions::RELEASE_SESSION,
            rusqlite::params![run.session_id, run.id],
        )?;
    }
    Ok(true)
}

#[async_trait]
impl JournalStore for SqliteStore {
    async fn commit_step(
        &self,
        run_id: &str,
        lease: Option<&mut SessionLease>,
        step: StepCommit<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        let prepared = Step::new(run_id, lease.as_deref(), &step)?;
        let outcome = {
            let _writing = self.lock_writes().await;
            self.fast
                .run(move |conn| prepared.apply(conn).map_err(StoreError::from))
                .await?
        };
        match (outcome, lease) {
            (Ok((seqs, new_version)), lease) => {
                if let (Some(v), Some(lease)) = (new_version, lease) {
                    lease.version = v;
                }
                Ok(seqs)
            }
            (Err(Refused::Lease), Some(lease)) => {
                Err(self.conflict(&lease.session_id, lease.version).await)
            }
            (Err(Refused::Lease), None) => Err(StoreError::LeaseRequired {
                action: "appending messages",
            }),
            (Err(Refused::Ended), _) => Err(StoreError::RunEnded {
                run_id: run_id.to_string(),
            }),
        }
    }

    async fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        let rows: Vec<JournalRow> = sqlx::query_as(
            "SELECT run_id, seq, kind, ref_seq, payload, at FROM run_journal WHERE run_id = ? ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        entries_from_rows(rows)
    }
}
