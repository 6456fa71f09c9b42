//! Types every surface (CLI, server, tests) exchanges: what `runs show --json`
//! prints is the same shape the API returns.

use serde::{Deserialize, Serialize};

use crate::{JournalEntry, RunRecord};

/// A run with its full journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    /// The run.
    pub run: RunRecord,
    /// Every journal entry in order.
    pub journal: Vec<JournalEntry>,
}

/// A session as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// Agent it talks to.
    pub agent: String,
    /// Compare-and-swap version; bumps on every change.
    pub version: i64,
    /// Messages in it.
    pub messages: i64,
    /// Creation time (ms since epoch).
    pub created_at: i64,
    /// Last change (ms since epoch).
    pub updated_at: i64,
}
