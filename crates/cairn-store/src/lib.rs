//! cairn's durable state, behind one trait per table (sessions, runs, the
//! journal, the job queue, schedules, channels, memories, agents). The
//! runtime and the server hold a [`Store`] and see only those traits; the
//! SQLite backend (`sqlite/`) serves a single node, the PostgreSQL backend
//! (`postgres/`) a deployment whose state must outlive its host or be
//! shared by several processes.
//!
//! Where the two backends' SQL can be one text it is: `both/<table>.rs` is
//! written once and `include!`d by `sqlite/<table>.rs` and
//! `postgres/<table>.rs`, each of which first names its `Store` (and `Db`,
//! the sqlx database) so the same text compiles once per backend. The
//! text uses `$n` placeholders and `CAST(x AS T)`, which both dialects
//! read, and writes through a seam both stores offer with the same names:
//! `lock_writes()` (SQLite's one in-process writer; nothing on
//! PostgreSQL), `write_tx()`, `writer()` (the pool writes go to) and
//! `jobs_added()` (PostgreSQL's NOTIFY; SQLite executors poll). Tables
//! whose statements differ in kind (the queue's claim, the journal's fast
//! writer, full-text search, migrations) stay per backend, and their module
//! header says why.

#![deny(clippy::too_many_lines)]

mod agents;
mod audit;
mod batches;
mod channels;
mod cluster;
mod error;
mod journal;
mod keys;
mod memories;
mod owner;
pub mod postgres;
mod queue;
mod runs;
mod schedules;
mod sessions;
pub mod sqlite;
mod tool_jobs;
pub mod transfer;
mod views;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

pub use agents::AgentStore;
pub use audit::{AuditLog, AuditStore, ForeignAuditKey};
pub use batches::BatchStore;
pub use channels::{Accepted, AwaitingReply, ChannelStore, NewOutbound};
pub use cluster::ClusterStore;
pub use error::{Found, StoreError};
pub use journal::{JournalStore, NewCompaction, NewEntry, StepCommit};
pub use keys::KeyStore;
pub use memories::{
    MemoryStore, NewMemory, SavedMemory, StoredVector, TermCounts, blob_to_vector, index_terms,
    index_words, terms_text, vector_to_blob,
};
pub use owner::{is_dead_local, this_process};
pub use postgres::{PgSettings, PgStore};
pub use queue::{Beat, Failed, Job, JobQueue, NewJob, Retry, kinds};
pub use runs::{RunProgress, RunStore};
pub use schedules::{ScheduleFire, ScheduleStore};
pub use sessions::{SessionContext, SessionLease, SessionStore};
pub use sqlite::{SqliteStore, fts_query};
pub use tool_jobs::{JobLease, ReadyToolJob, ToolJobStore};
pub use views::RunsView;

/// Everything a backend provides: every table's trait, plus health.
#[async_trait]
pub trait Backend:
    AgentStore
    + AuditStore
    + BatchStore
    + ChannelStore
    + ClusterStore
    + JournalStore
    + KeyStore
    + MemoryStore
    + JobQueue
    + RunStore
    + ScheduleStore
    + SessionStore
    + ToolJobStore
    + Send
    + Sync
    + 'static
{
    /// Checks the database answers (for `doctor` and readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Version of the newest applied schema migration.
    async fn schema_version(&self) -> Result<i64, StoreError>;

    /// Which backend and where, for logs and `doctor` (no credentials).
    fn describe(&self) -> String;
}

/// Handle to the store; cheap to clone. Its methods are the table traits'
/// (reached through `Deref`, no imports needed).
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and brings its
    /// schema up to date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        Ok(Store(Arc::new(SqliteStore::open_sqlite(path).await?)))
    }

    /// Wraps a backend.
    pub fn new(backend: impl Backend) -> Self {
        Store(Arc::new(backend))
    }
}
