use thiserror::Error;

/// What can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open database {target}: {reason}")]
    Open {
        /// Path or URL.
        target: String,
        /// Why.
        reason: String,
    },
    /// A compare-and-swap lost: someone else changed the row first.
    #[error(
        "session {session_id} changed concurrently (expected version {expected}, found {found})"
    )]
    VersionConflict {
        /// Session id.
        session_id: String,
        /// Version the writer read.
        expected: i64,
        /// Version found.
        found: i64,
    },
    /// A write that changes a session's messages was made without holding
    /// the session (a bug in the caller, not bad data).
    #[error("{action} needs the session lease, and none was given")]
    LeaseRequired {
        /// What was attempted.
        action: &'static str,
    },
    /// A write to a run that has already ended: a run ends once, and
    /// nothing changes it after.
    #[error("run {run_id} has already ended")]
    RunEnded {
        /// The run.
        run_id: String,
    },
    /// A run was to be ended by a plain update: a run ends only through a
    /// step commit that journals its end (a bug in the caller).
    #[error("run {run_id} can only end through a commit that journals its end")]
    EndNotJournaled {
        /// The run.
        run_id: String,
    },
    /// The audit log was sealed by another key than this process has.
    #[error(transparent)]
    ForeignAuditKey(#[from] crate::audit::ForeignAuditKey),
    /// The thing asked for does not exist.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// Kind of thing.
        what: &'static str,
        /// Id asked for.
        id: String,
    },
    /// An id prefix matched more than one row.
    #[error("{what} id prefix {prefix:?} is ambiguous: matches {count}")]
    Ambiguous {
        /// Kind of thing.
        what: &'static str,
        /// Prefix given.
        prefix: String,
        /// How many matched.
        count: usize,
    },
    /// A session belongs to another agent.
    #[error("session {session_id:?} belongs to agent {owner:?}, not {requested:?}")]
    WrongAgent {
        /// Session id.
        session_id: String,
        /// Its agent.
        owner: String,
        /// Agent asked for.
        requested: String,
    },
    /// A stored row could not be decoded (corruption or a newer schema).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Why.
        reason: String,
    },
    /// The database is newer than this binary.
    #[error(
        "database schema version {found} is newer than this cairn understands ({known}); upgrade cairn"
    )]
    SchemaTooNew {
        /// Version in the database.
        found: i64,
        /// Newest version this binary knows.
        known: i64,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A database error on the fast write path.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// Whether the same call may succeed if tried again: the database was
    /// unreachable, busy or out of connections (an outage), as opposed to
    /// an answer (absent, ambiguous, lost a race, corrupt, a caller's bug)
    /// that trying again cannot change.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|code| transient_code(&code))
            }
            StoreError::Db(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Protocol(_)
            ),
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            StoreError::Open { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn corrupt(table: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            table,
            reason: e.to_string(),
        }
    }
}

/// A database's error code that says "try again": PostgreSQL's connection
/// exceptions (08…), an administrator's shutdown or a server starting up
/// (57P01–57P03), a serialization failure or deadlock (40001, 40P01);
/// SQLite's busy and locked (5, 6).
fn transient_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "5" | "6"
        )
}

/// A lookup where absence is an answer, not an error: `NotFound` becomes
/// `None`, and every other error (an outage) stays an error, so it is never
/// taken for "absent".
pub trait Found<T> {
    /// `Ok(Some(row))`, `Ok(None)` for `NotFound`, or the error.
    fn found(self) -> Result<Option<T>, StoreError>;
}

impl<T> Found<T> for Result<T, StoreError> {
    fn found(self) -> Result<Option<T>, StoreError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StoreError;

    #[test]
    fn an_outage_is_transient_and_an_answer_is_not() {
        assert!(StoreError::Db(sqlx::Error::PoolTimedOut).is_transient());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(StoreError::Db(sqlx::Error::Io(io)).is_transient());
        for answer in [
            StoreError::NotFound {
                what: "run",
                id: "r".into(),
            },
            StoreError::RunEnded { run_id: "r".into() },
            StoreError::corrupt("runs", "bad"),
            StoreError::Db(sqlx::Error::RowNotFound),
        ] {
            assert!(!answer.is_transient(), "{answer}");
        }
    }
}
