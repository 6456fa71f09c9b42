//! What an agent remembers: facts (semantic memory) and hits from searching
//! them or the conversation history (episodic memory).

use serde::{Deserialize, Serialize};

/// A fact an agent keeps.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryRecord {
    /// Id (`mem_…`).
    pub id: String,
    /// The agent that keeps it.
    pub agent: String,
    /// The person it is about, when it is about one.
    pub user_id: Option<String>,
    /// The fact.
    pub text: String,
    /// 0 (trivia) to 1 (essential); weighs search ranking.
    pub importance: f64,
    /// Where it came from (a run id, `cli`, `import`, …).
    pub source: Option<String>,
    /// When it was first saved (ms since the epoch).
    pub created_at: i64,
    /// When it was last saved again or changed.
    pub updated_at: i64,
    /// Seen by every person the agent works for, not only `user_id`.
    #[serde(default)]
    pub shared: bool,
}

/// A fact found by a search, with how it ranked.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryHit {
    /// The fact.
    pub memory: MemoryRecord,
    /// Final score, the order of the results: relevance plus a small
    /// tie-break by importance and recency (higher is better).
    pub score: f64,
    /// How relevant the fact is to the query, 0..1, from words and meaning;
    /// recall into a prompt keeps facts above a floor of this.
    #[serde(default)]
    pub relevance: f64,
    /// Rank in the full-text results (1-based), if it was there.
    pub text_rank: Option<usize>,
    /// Share of the query's word weight the fact holds (0..1, BM25
    /// normalised), if it was a full-text result.
    #[serde(default)]
    pub lexical: Option<f64>,
    /// Rank in the vector results (1-based), if it was there.
    pub vector_rank: Option<usize>,
    /// Cosine similarity of the query's and the fact's embeddings.
    #[serde(default)]
    pub cosine: Option<f32>,
}

/// A message found by an episodic search.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageHit {
    /// Session.
    pub session_id: String,
    /// Position in the session.
    pub seq: i64,
    /// The session's agent.
    pub agent: String,
    /// The run that wrote it, if any.
    pub run_id: Option<String>,
    /// `user` or `assistant`.
    pub role: String,
    /// The message's text (text blocks and tool results).
    pub text: String,
    /// When it was written (ms since the epoch).
    pub created_at: i64,
}

/// Which messages an episodic search looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageFilter {
    /// Only sessions of this agent.
    pub agent: Option<String>,
    /// Only this session.
    pub session_id: Option<String>,
    /// Only sessions of this person.
    pub user_id: Option<String>,
    /// Written at or after (ms since the epoch).
    pub since: Option<i64>,
    /// Written before (ms since the epoch).
    pub until: Option<i64>,
}
