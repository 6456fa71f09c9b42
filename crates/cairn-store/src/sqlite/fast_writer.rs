//! The hot write path: one rusqlite connection that runs a whole step
//! transaction in a single call. Through sqlx each statement of a
//! transaction is a hop to its worker thread and back (~70 µs here), and a
//! step's commit is six or more of them; here it is none.
//!
//! The transaction runs on the calling thread, without waiting for SQLite's
//! file lock: writers in this process are already serialised by the store's
//! write lock, so the only contention left is another process on the same
//! file. When that happens (`SQLITE_BUSY`, nothing written) the same
//! transaction is retried on a blocking thread that waits for the lock, so
//! an async worker never sleeps in SQLite's busy handler.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::StoreError;

/// How long the retry on the blocking thread waits for another process.
const BUSY_WAIT: Duration = Duration::from_secs(30);

/// The write connection.
pub(crate) struct FastWriter {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl FastWriter {
    /// Opens the connection.
    pub fn open(path: &Path) -> Result<FastWriter, StoreError> {
        let conn = rusqlite::Connection::open(path)
            .and_then(|c| {
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "NORMAL")?;
                c.pragma_update(None, "foreign_keys", "ON")?;
                c.busy_timeout(Duration::ZERO)?;
                Ok(c)
            })
            .map_err(|e| StoreError::Open {
                target: format!("writer connection to {}", path.display()),
                reason: e.to_string(),
            })?;
        Ok(FastWriter {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` as one transaction on the writer connection and returns its
    /// result. `f` must leave nothing behind when it fails (a dropped
    /// rusqlite transaction rolls back), because on `SQLITE_BUSY` it runs
    /// again. Callers hold the store's write lock.
    pub async fn run<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        {
            let mut conn = self.conn.lock().map_err(|_| poisoned())?;
            match f(&mut conn) {
                Err(e) if is_busy(&e) => {}
                other => return other,
            }
        }
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| poisoned())?;
            conn.busy_timeout(BUSY_WAIT)?;
            let result = f(&mut conn);
            conn.busy_timeout(Duration::ZERO)?;
            result
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            table: "writer",
            reason: format!("the write task failed: {e}"),
        })?
    }
}

fn poisoned() -> StoreError {
    StoreError::Corrupt {
        table: "writer",
        reason: "a write panicked earlier; restart cairn".into(),
    }
}

/// Another process holds SQLite's write lock.
fn is_busy(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
