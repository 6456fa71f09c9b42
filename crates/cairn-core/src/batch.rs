//! Batch fan-out: one run per input item (a file, a JSONL line), a bounded
//! number at a time, each item's result collected once, failures retried
//! and then listed.

use serde::{Deserialize, Serialize};

/// A batch as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Id (`bat_…`).
    pub id: String,
    /// Name, unique: running the same batch again resumes it.
    pub name: String,
    /// Agent every item's run uses.
    pub agent: String,
    /// Where the items came from (a directory, a JSONL file).
    pub source: String,
    /// Runs in flight at most.
    pub concurrency: i64,
    /// Runs per item at most (the first and its retries).
    pub max_attempts: i64,
    /// Created (ms).
    pub created_at: i64,
    /// Every item done or failed (ms).
    pub finished_at: Option<i64>,
}

/// Where an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Not started (or waiting for a retry).
    Pending,
    /// Its run is queued or running.
    Running,
    /// Its run completed; the output is kept.
    Done,
    /// Every attempt failed; the last error is kept.
    Failed,
}

impl ItemStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::Running => "running",
            ItemStatus::Done => "done",
            ItemStatus::Failed => "failed",
        }
    }

    /// From storage.
    pub fn parse(s: &str) -> Option<ItemStatus> {
        Some(match s {
            "pending" => ItemStatus::Pending,
            "running" => ItemStatus::Running,
            "done" => ItemStatus::Done,
            "failed" => ItemStatus::Failed,
            _ => return None,
        })
    }
}

/// One input of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    /// Batch.
    pub batch_id: String,
    /// Position (from 0).
    pub idx: i64,
    /// What it is called (a file name, `line 12`).
    pub label: String,
    /// The message its run starts with.
    pub input: String,
    /// Where it is.
    pub status: ItemStatus,
    /// Runs started for it.
    pub attempt: i64,
    /// Its current or last run.
    pub run_id: Option<String>,
    /// The run's answer, once done.
    pub output: Option<String>,
    /// The last failure.
    pub error: Option<String>,
}

/// How far a batch is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCounts {
    /// Not started.
    pub pending: i64,
    /// In flight.
    pub running: i64,
    /// Done.
    pub done: i64,
    /// Failed for good.
    pub failed: i64,
}

impl BatchCounts {
    /// All items.
    pub fn total(&self) -> i64 {
        self.pending + self.running + self.done + self.failed
    }

    /// Whether every item is done or failed.
    pub fn finished(&self) -> bool {
        self.pending == 0 && self.running == 0
    }
}
