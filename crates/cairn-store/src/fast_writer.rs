//! The hot write path: a thread owning its own SQLite connection runs a
//! whole step transaction per request. Through sqlx each statement of a
//! transaction is a hop to its worker thread and back (~70 µs here), and a
//! step's commit is six or more of them; here it is one. Writes through
//! sqlx and through this thread take the same in-process write lock, so
//! they never meet on SQLite's file lock (whose busy handler sleeps).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::StoreError;

type Task = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// Handle to the writer thread.
pub(crate) struct FastWriter {
    tasks: mpsc::Sender<Task>,
}

impl FastWriter {
    /// Opens the connection on a new thread.
    pub fn open(path: &Path) -> Result<FastWriter, StoreError> {
        let (tasks, inbox) = mpsc::channel::<Task>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("cairn-store-writer".into())
            .spawn(move || {
                let conn = rusqlite::Connection::open(&path).and_then(|c| {
                    c.busy_timeout(Duration::from_secs(30))?;
                    c.pragma_update(None, "journal_mode", "WAL")?;
                    c.pragma_update(None, "synchronous", "NORMAL")?;
                    c.pragma_update(None, "foreign_keys", "ON")?;
                    Ok(c)
                });
                let mut conn = match conn {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                while let Ok(task) = inbox.recv() {
                    task(&mut conn);
                }
            })
            .map_err(|e| StoreError::Open {
                target: "writer thread".into(),
                reason: e.to_string(),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(FastWriter { tasks }),
            Ok(Err(reason)) => Err(StoreError::Open {
                target: "writer connection".into(),
                reason,
            }),
            Err(_) => Err(StoreError::Open {
                target: "writer connection".into(),
                reason: "the writer thread stopped".into(),
            }),
        }
    }

    /// Runs `f` on the writer connection and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        self.tasks
            .send(Box::new(move |c| {
                let _ = done_tx.send(f(c));
            }))
            .map_err(|_| StoreError::Corrupt {
                table: "writer",
                reason: "the writer thread stopped".into(),
            })?;
        done_rx.await.map_err(|_| StoreError::Corrupt {
            table: "writer",
            reason: "the writer thread stopped".into(),
        })?
    }
}
