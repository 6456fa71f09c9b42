//! Sessions: creation, the per-session run lease, and messages appended with
//! compare-and-swap on the session's version.

use async_trait::async_trait;
use cairn_core::Message;
use cairn_core::api::SessionInfo;

use crate::StoreError;

/// Proof that a run owns a session right now, with the version it last
/// saw. Only the store issues one (to the runtime, which drives runs):
/// nothing else can forge a lease to write a session's messages.
#[derive(Debug, Clone)]
pub struct SessionLease {
    pub(crate) session_id: String,
    pub(crate) run_id: String,
    pub(crate) version: i64,
}

impl SessionLease {
    pub(crate) fn new(session_id: String, run_id: String, version: i64) -> Self {
        SessionLease {
            session_id,
            run_id,
            version,
        }
    }

    /// The session held.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The run holding it.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The session's version as of this holder's last write.
    pub fn version(&self) -> i64 {
        self.version
    }
}

/// Gives session `$1` back if run `$2` holds it: a release, and every end
/// of a run (in the commit that ends it). One text for both backends
/// (SQLite numbers `$n` in the order they first appear).
pub(crate) const RELEASE_SESSION: &str = "UPDATE sessions SET busy_run = NULL, busy_until = NULL, busy_owner = NULL WHERE id = $1 AND busy_run = $2";

/// What a session's next model call sees: the summary of compacted
/// messages, if any, and the messages after it with their seqs.
#[derive(Debug, Clone, Default)]
pub struct SessionContext {
    /// Summary of the messages up to `through_seq`.
    pub summary: Option<String>,
    /// Last message seq the summary covers (0: none).
    pub through_seq: i64,
    /// Messages after `through_seq`, oldest first, with their seqs.
    pub messages: Vec<(i64, Message)>,
}

/// SessionStore: see the module documentation.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Returns the session, creating it for `agent` if it does not exist.
    async fn ensure_session(&self, id: &str, agent: &str) -> Result<SessionInfo, StoreError>;

    /// One session.
    async fn get_session(&self, id: &str) -> Result<SessionInfo, StoreError>;

    /// Sessions, most recently changed first.
    async fn list_sessions(&self, limit: i64) -> Result<Vec<SessionInfo>, StoreError>;

    /// Returns the session, creating it for `agent` as `user`'s if it does
    /// not exist (an existing session keeps its owner: the caller checks).
    async fn ensure_session_of(
        &self,
        id: &str,
        agent: &str,
        user: &str,
    ) -> Result<SessionInfo, StoreError>;

    /// `user`'s sessions, most recently changed first.
    async fn list_sessions_of(
        &self,
        user: &str,
        limit: i64,
    ) -> Result<Vec<SessionInfo>, StoreError>;

    /// Tries to take the session for `run_id` for `lease_ms`. Returns `None`
    /// while another live run holds it, or while an older run of the session
    /// is unfinished (turns go in the order they were asked); an expired
    /// lease (its process died) is taken over.
    async fn try_acquire_session(
        &self,
        session_id: &str,
        run_id: &str,
        lease_ms: i64,
    ) -> Result<Option<SessionLease>, StoreError>;

    /// Extends a held lease. Fails with `VersionConflict` if it was lost.
    async fn renew_session_lease(
        &self,
        lease: &SessionLease,
        lease_ms: i64,
    ) -> Result<(), StoreError>;

    /// Gives the session back.
    async fn release_session(&self, lease: &SessionLease) -> Result<(), StoreError>;

    /// Every message of a session, oldest first.
    async fn messages(&self, session_id: &str) -> Result<Vec<Message>, StoreError>;

    /// The session's context in force: the newest compaction's summary and
    /// the messages after it.
    async fn session_context(&self, session_id: &str) -> Result<SessionContext, StoreError>;

    /// How many times a session's context was compacted.
    async fn compaction_count(&self, session_id: &str) -> Result<i64, StoreError>;

    /// The person a session belongs to, when known (channels set it).
    async fn session_user(&self, session_id: &str) -> Result<Option<String>, StoreError>;

    /// The messages one run added to its session, oldest first.
    async fn run_messages(
        &self,
        session_id: &str,
        run_id: &str,
    ) -> Result<Vec<Message>, StoreError>;

    /// Puts earlier conversation into a session that has no messages yet
    /// (a client that sends the whole history, as OpenAI clients do).
    /// Returns `false` and writes nothing if the session already has messages.
    async fn seed_messages(
        &self,
        session_id: &str,
        messages: &[Message],
    ) -> Result<bool, StoreError>;
}

/// One session row: id, agent, version, created_at, updated_at, user_id and
/// its message count, as both backends select it.
pub(crate) type SessionRow = (String, String, i64, i64, i64, Option<String>, i64);

/// A session from its row.
pub(crate) fn session_from_row(r: SessionRow) -> SessionInfo {
    SessionInfo {
        id: r.0,
        agent: r.1,
        version: r.2,
        created_at: r.3,
        updated_at: r.4,
        user_id: r.5,
        messages: r.6,
    }
}

/// Messages from their stored JSON.
pub(crate) fn decode_messages(rows: &[String]) -> Result<Vec<Message>, StoreError> {
    rows.iter()
        .map(|c| serde_json::from_str(c).map_err(|e| StoreError::corrupt("messages", e)))
        .collect()
}

/// A session's context from its newest compaction and the messages after it.
pub(crate) fn context_from_rows(
    latest: Option<(i64, String)>,
    rows: Vec<(i64, String)>,
) -> Result<SessionContext, StoreError> {
    let (through_seq, summary) = match latest {
        Some((seq, text)) => (seq, Some(text)),
        None => (0, None),
    };
    let messages = rows
        .into_iter()
        .map(|(seq, c)| {
            serde_json::from_str(&c)
                .map(|m| (seq, m))
                .map_err(|e| StoreError::corrupt("messages", e))
        })
        .collect::<Result<_, _>>()?;
    Ok(SessionContext {
        summary,
        through_seq,
        messages,
    })
}

/// `WrongAgent` when a session found for `agent` belongs to another.
pub(crate) fn check_agent(info: SessionInfo, agent: &str) -> Result<SessionInfo, StoreError> {
    if info.agent != agent {
        return Err(StoreError::WrongAgent {
            session_id: info.id,
            owner: info.agent,
            requested: agent.to_string(),
        });
    }
    Ok(info)
}

/// The error for a lost lease, from the version now stored (if any).
pub(crate) fn conflict_error(
    session_id: &str,
    expected: i64,
    found: Result<Option<i64>, StoreError>,
) -> StoreError {
    match found {
        Ok(Some(found)) => StoreError::VersionConflict {
            session_id: session_id.to_string(),
            expected,
            found,
        },
        Ok(None) => StoreError::NotFound {
            what: "session",
            id: session_id.to_string(),
        },
        Err(e) => e,
    }
}
