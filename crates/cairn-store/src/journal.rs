//! The append-only run journal, and the one transaction that records a step:
//! journal entries, the session message and the run's totals commit together
//! or not at all.

use crate::SessionLease;
use async_trait::async_trait;
use cairn_core::JournalEntry;
use cairn_core::JournalPayload;
use cairn_core::Message;
use cairn_core::RunRecord;

use crate::StoreError;

/// A journal entry about to be written.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// For results: the intent's seq.
    pub ref_seq: Option<i64>,
    /// For results whose intent is in the same commit: its index there
    /// (its seq is not known before the commit).
    pub ref_entry: Option<usize>,
    /// What it records.
    pub body: JournalPayload,
}

/// Everything one step changes, committed atomically.
#[derive(Debug, Default)]
pub struct StepCommit<'a> {
    /// Journal entries to append, in order.
    pub entries: Vec<NewEntry>,
    /// Messages to append to the session, in order (needs the session
    /// lease).
    pub messages: Vec<&'a Message>,
    /// The run's new status and totals.
    pub run: Option<&'a RunRecord>,
    /// A summary that replaces older messages in the session's context
    /// (needs the session lease).
    pub compaction: Option<NewCompaction>,
    /// Jobs the step starts (a tool call for a worker, the next step):
    /// queued only if the step commits, so a crash between the two can
    /// neither lose the follow-up nor start it for a step never recorded.
    pub jobs: Vec<crate::NewJob>,
}

/// Older messages of a session replaced in its context by a summary.
#[derive(Debug, Clone)]
pub struct NewCompaction {
    /// Messages up to this seq are summarized.
    pub through_seq: i64,
    /// The summary.
    pub summary: String,
    /// Estimated prompt tokens before.
    pub tokens_before: u64,
    /// Estimated prompt tokens after.
    pub tokens_after: u64,
}

/// JournalStore: see the module documentation.
#[async_trait]
pub trait JournalStore: Send + Sync {
    /// Commits one step for `run_id`; returns the seqs given to `entries`.
    /// Fails with `VersionConflict` (and writes nothing) if the session lease
    /// was lost. The whole transaction is one request to the writer thread.
    async fn commit_step(
        &self,
        run_id: &str,
        lease: Option<&mut SessionLease>,
        step: StepCommit<'_>,
    ) -> Result<Vec<i64>, StoreError>;

    /// The journal of a run, in order.
    async fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError>;
}

/// A journal row: run_id, seq, kind, ref_seq, payload, at.
pub(crate) type JournalRow = (String, i64, String, Option<i64>, String, i64);

/// Journal entries from their rows.
pub(crate) fn entries_from_rows(rows: Vec<JournalRow>) -> Result<Vec<JournalEntry>, StoreError> {
    rows.into_iter()
        .map(|(run_id, seq, kind, ref_seq, payload, at)| {
            Ok(JournalEntry {
                run_id,
                seq,
                ref_seq,
                body: JournalPayload::decode(&kind, &payload)
                    .map_err(|e| StoreError::corrupt("run_journal", e))?,
                at,
            })
        })
        .collect()
}

/// A step's entries as stored: kind, ref_seq, ref_entry, payload JSON.
pub(crate) type EncodedEntry = (&'static str, Option<i64>, Option<usize>, String);

/// Encodes a step's entries for storage.
pub(crate) fn encode_entries(entries: &[NewEntry]) -> Result<Vec<EncodedEntry>, StoreError> {
    entries
        .iter()
        .map(|e| {
            let payload = e
                .body
                .encode()
                .map_err(|e| StoreError::corrupt("run_journal", e))?;
            Ok((e.body.kind().as_str(), e.ref_seq, e.ref_entry, payload))
        })
        .collect()
}

/// The stored payload of a run's end, for the store's own ends of runs
/// that never reached a driver (withdrawn, absorbed into another turn).
pub(crate) fn run_end_payload(
    status: cairn_core::RunStatus,
    error: Option<String>,
) -> Result<String, StoreError> {
    JournalPayload::RunEnd(cairn_core::RunEnd { status, error })
        .encode()
        .map_err(|e| StoreError::corrupt("run_journal", e))
}

/// Journals the end of a run the store ends itself, on either backend:
/// one text serves both, as SQLite numbers `$n` parameters in the order
/// they first appear, which here is their order.
pub(crate) async fn journal_run_end<'c, DB, E>(
    conn: E,
    run_id: &str,
    payload: &str,
    now: i64,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    StoreError: From<sqlx::Error>,
{
    sqlx::query::<DB>(
        "INSERT INTO run_journal (run_id, seq, kind, ref_seq, payload, at)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, 'run_end', NULL, $2, $3 FROM run_journal WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(payload)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A step's messages as stored: role and JSON.
pub(crate) fn encode_messages(
    messages: &[&Message],
) -> Result<Vec<(&'static str, String)>, StoreError> {
    messages
        .iter()
        .map(|m| {
            serde_json::to_string(m)
                .map(|c| (m.role.as_str(), c))
                .map_err(|e| StoreError::corrupt("messages", e))
        })
        .collect()
}
