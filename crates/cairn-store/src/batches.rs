//! Batches and their items, and the leader rows that keep one batch
//! driver at a time across coordinators.

use async_trait::async_trait;
use cairn_core::RunRecord;
use cairn_core::batch::{BatchCounts, BatchItem, BatchRecord, ItemStatus};

use crate::StoreError;

/// BatchStore: see the module documentation.
#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Creates a batch with its items (label, input), unless one of the
    /// same name exists; returns the stored batch either way.
    async fn create_batch(
        &self,
        batch: &BatchRecord,
        items: &[(String, String)],
    ) -> Result<BatchRecord, StoreError>;

    /// A batch by id or name.
    async fn get_batch(&self, id_or_name: &str) -> Result<Option<BatchRecord>, StoreError>;

    /// Batches, newest first.
    async fn list_batches(&self, limit: i64) -> Result<Vec<BatchRecord>, StoreError>;

    /// Batches not finished.
    async fn active_batches(&self) -> Result<Vec<BatchRecord>, StoreError>;

    /// Items by status.
    async fn batch_counts(&self, batch_id: &str) -> Result<BatchCounts, StoreError>;

    /// Items after position `after`, in order, of one status or all.
    async fn batch_items(
        &self,
        batch_id: &str,
        status: Option<ItemStatus>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<BatchItem>, StoreError>;

    /// Starts item `idx` with `run` (queued with its job) if it is pending;
    /// `false` (nothing written) if another driver started it first.
    async fn start_batch_item(
        &self,
        batch_id: &str,
        idx: i64,
        run: &RunRecord,
    ) -> Result<bool, StoreError>;

    /// Collects the items whose runs ended: completed ones are done, others
    /// go back to pending while attempts remain, else fail. Marks the batch
    /// finished when nothing is left. How many items changed.
    async fn settle_batch(&self, batch: &BatchRecord) -> Result<u64, StoreError>;

    /// Takes or keeps the leader row `name` for `holder` for `ttl_ms`;
    /// whether `holder` leads now.
    async fn try_lead(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError>;
}

/// A stored batch row: id, name, agent, source, concurrency, max_attempts,
/// created_at, finished_at.
pub(crate) type BatchRow = (String, String, String, String, i64, i64, i64, Option<i64>);

/// `SELECT` of `BatchRow`'s columns, then `$rest`.
macro_rules! select_batches {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, agent, source, concurrency, max_attempts, created_at, finished_at
             FROM batches ",
            $rest
        )
    };
}
pub(crate) use select_batches;

/// A batch from its row.
pub(crate) fn decode_batch(r: BatchRow) -> BatchRecord {
    BatchRecord {
        id: r.0,
        name: r.1,
        agent: r.2,
        source: r.3,
        concurrency: r.4,
        max_attempts: r.5,
        created_at: r.6,
        finished_at: r.7,
    }
}

/// A stored item row: batch_id, idx, label, input, status, attempt,
/// run_id, output, error.
pub(crate) type ItemRow = (
    String,
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// An item from its row.
pub(crate) fn decode_item(r: ItemRow) -> Result<BatchItem, StoreError> {
    Ok(BatchItem {
        status: ItemStatus::parse(&r.4)
            .ok_or_else(|| StoreError::corrupt("batch_items", format!("status {:?}", r.4)))?,
        batch_id: r.0,
        idx: r.1,
        label: r.2,
        input: r.3,
        attempt: r.5,
        run_id: r.6,
        output: r.7,
        error: r.8,
    })
}

/// Counts from `(status, count)` rows.
pub(crate) fn counts(rows: Vec<(String, i64)>) -> BatchCounts {
    let mut c = BatchCounts::default();
    for (status, n) in rows {
        match ItemStatus::parse(&status) {
            Some(ItemStatus::Pending) => c.pending = n,
            Some(ItemStatus::Running) => c.running = n,
            Some(ItemStatus::Done) => c.done = n,
            Some(ItemStatus::Failed) => c.failed = n,
            None => {}
        }
    }
    c
}
