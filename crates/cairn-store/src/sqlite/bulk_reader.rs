//! A read-only rusqlite connection for reads that return many rows.
//! Through sqlx each row crosses from its worker thread as a message and is
//! decoded column by column: 10,000 schedules took 42–77 ms that way; here
//! the whole read runs on one blocking thread.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::StoreError;

/// The read connection.
pub(crate) struct BulkReader {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl BulkReader {
    /// Opens the database read-only.
    pub fn open(path: &Path) -> Result<BulkReader, StoreError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| {
            c.busy_timeout(std::time::Duration::from_secs(30))?;
            Ok(c)
        })
        .map_err(|e| StoreError::Open {
            target: format!("reader connection to {}", path.display()),
            reason: e.to_string(),
        })?;
        Ok(BulkReader {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection, on a blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| StoreError::Corrupt {
                table: "reader",
                reason: "a read panicked earlier; restart cairn".into(),
            })?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            table: "reader",
            reason: format!("the read task failed: {e}"),
        })?
    }
}
