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
    pub(crate) fn corrupt(table: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            table,
            reason: e.to_string(),
        }
    }
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
