//! The append-only run journal, and the one transaction that records a step:
//! journal entries, the session message and the run's totals commit together
//! or not at all.

use cairn_core::{JournalEntry, now_ms};

use async_trait::async_trait;

use super::SqliteStore;
use crate::journal::*;
use crate::{SessionLease, StoreError};
use rusqlite::OptionalExtension;

#[async_trait]
impl JournalStore for SqliteStore {
    async fn commit_step(
        &self,
        run_id: &str,
        lease: Option<&mut SessionLease>,
        step: StepCommit<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        let now = now_ms();
        let entries = encode_entries(&step.entries)?;
        let compaction = step.compaction.clone();
        let message = if step.messages.is_empty() && compaction.is_none() {
            None
        } else {
            let Some(lease) = lease.as_deref() else {
                return Err(StoreError::LeaseRequired {
                    action: "appending messages",
                });
            };
            let contents = encode_messages(&step.messages)?;
            Some((
                contents,
                lease.session_id.clone(),
                lease.run_id.clone(),
                lease.version,
            ))
        };
        let run = step.run.cloned();
        let jobs: Vec<_> = step
            .jobs
            .iter()
            .map(|j| crate::queue::job_insert(j, now))
            .collect();
        let run_id = run_id.to_string();
        let outcome = {
            let _writing = self.lock_writes().await;
            self.fast
                .run(move |conn| {
                    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let mut seqs = Vec::with_capacity(entries.len());
                    {
                        let mut insert = tx.prepare_cached(
                            "INSERT INTO run_journal (run_id, seq, kind, ref_seq, payload, at)
                             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM run_journal WHERE run_id = ?1
                             RETURNING seq",
                        )?;
                        for (kind, ref_seq, ref_entry, payload) in &entries {
                            let ref_seq = ref_seq.or_else(|| ref_entry.and_then(|i| seqs.get(i).copied()));
                            let seq: i64 = insert.query_row(rusqlite::params![run_id, kind, ref_seq, payload, now], |r| r.get(0))?;
                            seqs.push(seq);
                        }
                    }
                    let mut new_version = None;
                    if let Some((contents, session_id, holder, version)) = &message {
                        let bumped: Option<i64> = tx
                            .query_row(
                                "UPDATE sessions SET version = version + 1, updated_at = ?1
                                 WHERE id = ?2 AND version = ?3 AND busy_run = ?4 RETURNING version",
                                rusqlite::params![now, session_id, version, holder],
                                |r| r.get(0),
                            )
                            .optional()?;
                        let Some(bumped) = bumped else {
                            // Lease lost: the transaction rolls back on drop.
                            return Ok(Err(()));
                        };
                        let mut insert = tx.prepare_cached(
                            "INSERT INTO messages (session_id, seq, run_id, role, content, created_at)
                             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM messages WHERE session_id = ?1",
                        )?;
                        for (role, content) in contents {
                            insert.execute(rusqlite::params![session_id, holder, role, content, now])?;
                        }
                        drop(insert);
                        if let Some(c) = &compaction {
                            tx.execute(
                                "INSERT INTO session_compactions
                                   (session_id, through_seq, summary, run_id, tokens_before, tokens_after, created_at)
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                                 ON CONFLICT (session_id, through_seq) DO UPDATE SET summary = excluded.summary,
                                   run_id = excluded.run_id, tokens_before = excluded.tokens_before,
                                   tokens_after = excluded.tokens_after, created_at = excluded.created_at",
                                rusqlite::params![
                                    session_id,
                                    c.through_seq,
                                    c.summary,
                                    holder,
                                    c.tokens_before as i64,
                                    c.tokens_after as i64,
                                    now
                                ],
                            )?;
                        }
                        new_version = Some(bumped);
                    }
                    if let Some(run) = &run {
                        tx.execute(
                            "UPDATE runs SET status = ?1, output = ?2, error = ?3, steps = ?4, input_tokens = ?5,
                                output_tokens = ?6, cost_usd = ?7, finished_at = ?8, model = ?9
                             WHERE id = ?10",
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
                    }
                    for (id, kind, job_run, payload, priority, run_at, dedup) in &jobs {
                        tx.execute(
                            super::queue::INSERT_JOB,
                            rusqlite::params![id, kind, job_run, payload, priority, run_at, dedup, now],
                        )?;
                    }
                    tx.commit()?;
                    Ok(Ok((seqs, new_version)))
                })
                .await?
        };
        match (outcome, lease) {
            (Ok((seqs, new_version)), lease) => {
                if let (Some(v), Some(lease)) = (new_version, lease) {
                    lease.version = v;
                }
                Ok(seqs)
            }
            (Err(()), Some(lease)) => Err(self.conflict(&lease.session_id, lease.version).await),
            (Err(()), None) => Err(StoreError::LeaseRequired {
                action: "appending messages",
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
