//! The SQLite backend: one file, WAL, safe for several processes on one
//! host. Each table's trait is implemented in the file of the same name.

mod agents;
mod audit;
mod batches;
mod bulk_reader;
mod channels;
mod cluster;
mod fast_writer;
mod journal;
mod keys;
mod memories;
pub(crate) mod migrate;
mod queue;
mod runs;
mod schedules;
mod sessions;
mod tool_jobs;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Backend, StoreError};

pub use memories::fts_query;

/// The SQLite backend; cheap to clone.
///
/// SQLite allows one writer at a time. All writes go through one connection
/// (`writer`), so writers in this process queue in order instead of
/// colliding on the file lock and sleeping in SQLite's busy handler; reads
/// use a pool of read-only connections, which WAL lets run beside the writer.
/// Other processes on the same file still wait via the busy timeout.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    fast: std::sync::Arc<fast_writer::FastWriter>,
    bulk: std::sync::Arc<bulk_reader::BulkReader>,
    /// Held around every write, whichever connection makes it.
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The database file and its (device, inode) when opened: open
    /// connections keep working on a deleted file, so readiness checks
    /// that the file is still the one in use.
    file: std::sync::Arc<(std::path::PathBuf, Option<(u64, u64)>)>,
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl SqliteStore {
    /// Opens (creating if needed) the SQLite database at `path` and brings its
    /// schema up to date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                target: path.display().to_string(),
                reason: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| StoreError::Open {
                target: path.display().to_string(),
                reason: e.to_string(),
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Several cairn processes may share the file; wait for the writer
            // rather than failing.
            .busy_timeout(Duration::from_secs(30));
        let open_err = |e: sqlx::Error| StoreError::Open {
            target: path.display().to_string(),
            reason: e.to_string(),
        };
        // A local file needs no liveness ping before each use (sqlx's default
        // costs a round trip per write).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        migrate::run(&writer).await?;
        memories::fill_terms(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            // Reads map the file instead of a pread per page: a search that
            // touches a hundred scattered rows makes no system calls for them.
            .connect_with(options.read_only(true).pragma("mmap_size", "1073741824"))
            .await
            .map_err(open_err)?;
        let fast = std::sync::Arc::new(fast_writer::FastWriter::open(path)?);
        let bulk = std::sync::Arc::new(bulk_reader::BulkReader::open(path)?);
        let store = SqliteStore {
            pool,
            writer,
            fast,
            bulk,
            write_lock: Default::default(),
            file: std::sync::Arc::new((path.to_path_buf(), file_identity(path))),
        };
        Ok(store)
    }

    /// Checks the database answers (for `doctor` and readiness).
    async fn ping_file(&self) -> Result<(), StoreError> {
        // The file first: a query may need a new pool connection, and
        // opening a moved file fails with a vaguer error than this one.
        let (path, opened) = self.file.as_ref();
        if file_identity(path) != *opened {
            return Err(StoreError::Open {
                target: path.display().to_string(),
                reason:
                    "the database file is gone or was replaced while this process had it open; \
                         writes would be lost: restart after restoring it"
                        .into(),
            });
        }
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Takes the in-process write lock; every write holds it.
    pub(crate) async fn lock_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }

    /// Starts a write transaction that holds SQLite's write lock from its
    /// first statement, so read-then-write never fails on upgrade.
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        // Callers hold `write_lock` (see `lock_writes`).
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The one connection single writes go to (callers hold `write_lock`).
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Jobs were added: nothing to signal, executors on SQLite poll.
    pub(crate) fn jobs_added(&self) {}
}

#[async_trait]
impl Backend for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.ping_file().await
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        migrate::current_version(&self.pool).await
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.file.0.display())
    }
}
