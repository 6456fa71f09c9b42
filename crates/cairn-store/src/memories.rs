//! Semantic memories (facts with embeddings, de-duplicated per agent) and
//! full-text search over them and over every message (episodic memory).
//! Ranking and the vector index live in cairn-memory; this is storage.

use async_trait::async_trait;
use cairn_core::MemoryRecord;
use cairn_core::MessageFilter;
use cairn_core::MessageHit;

use crate::StoreError;

/// A memory about to be saved.
#[derive(Debug, Clone)]
pub struct NewMemory {
    /// Id to give it if it is new.
    pub id: String,
    /// Agent.
    pub agent: String,
    /// Person it is about.
    pub user_id: Option<String>,
    /// The fact.
    pub text: String,
    /// Hash of the normalised text; equal hashes are the same fact.
    pub hash: String,
    /// 0..=1.
    pub importance: f64,
    /// Where it came from.
    pub source: Option<String>,
    /// Its embedding, if an embedder is configured.
    pub embedding: Option<Vec<f32>>,
    /// The embedder's model id.
    pub embed_model: Option<String>,
    /// When it was first and last saved, if known (an import); else now.
    pub times: Option<(i64, i64)>,
    /// Seen by everyone the agent works for.
    pub shared: bool,
}

/// What saving did.
#[derive(Debug, Clone, PartialEq)]
pub enum SavedMemory {
    /// A new memory.
    New(MemoryRecord),
    /// The same fact was already kept: its importance and time were updated.
    Duplicate(MemoryRecord),
}

impl SavedMemory {
    /// The memory either way.
    pub fn record(&self) -> &MemoryRecord {
        match self {
            SavedMemory::New(m) | SavedMemory::Duplicate(m) => m,
        }
    }
}

/// A stored embedding, for building the vector index.
#[derive(Debug, Clone)]
pub struct StoredVector {
    /// Row number (stable, increasing).
    pub rowid: i64,
    /// The memory's agent.
    pub agent: String,
    /// The person it belongs to (`""`: the local owner).
    pub owner: String,
    /// Seen by everyone the agent works for.
    pub shared: bool,
    /// Little-endian f32 values.
    pub vector: Vec<f32>,
}

/// Encodes a vector as little-endian f32 bytes.
pub fn vector_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes little-endian f32 bytes.
pub fn blob_to_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The distinct words of `text`, lower-cased, in order: letters and digits,
/// everything else separating words, as the full-text index splits them
/// (it folds case itself).
pub fn index_words(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// The words of `text` as the facts' full-text index holds them, in order
/// with repeats (a document's length counts them): split as `index_words`
/// splits, lower-cased, stemmed with Snowball's English stemmer. Both
/// backends index this, not their own tokenizer's output (FTS5's porter
/// and PostgreSQL's parser and snowball split and stem differently), so
/// they rank the same facts the same way.
pub fn index_terms(text: &str) -> Vec<String> {
    static STEMMER: std::sync::LazyLock<rust_stemmers::Stemmer> = std::sync::LazyLock::new(|| {
        rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English)
    });
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| STEMMER.stem(&w.to_lowercase()).into_owned())
        .collect()
}

/// `index_terms` of `text` as one string, the form stored in `terms`.
pub fn terms_text(text: &str) -> String {
    index_terms(text).join(" ")
}

/// How common some words are among the facts kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermCounts {
    /// Facts kept (every agent's: the full-text index's own count).
    pub facts: i64,
    /// Per word, the facts holding it, up to the cap asked for.
    pub matching: Vec<i64>,
}

/// MemoryStore: see the module documentation.
#[async_trait]
pub trait MemoryStore: Send + Sync {
    /// Saves a memory, or refreshes the same fact if the agent keeps it
    /// already (same normalised text): importance becomes the higher of the
    /// two.
    async fn save_memory(&self, m: &NewMemory) -> Result<SavedMemory, StoreError>;

    /// Saves many memories in one transaction: all or none.
    async fn save_memories(&self, ms: &[NewMemory]) -> Result<Vec<SavedMemory>, StoreError>;

    /// Deletes a memory of `agent` by id or unique id prefix; returns it.
    async fn forget_memory(&self, agent: &str, id: &str) -> Result<MemoryRecord, StoreError>;

    /// One memory of `agent` by id or unique id prefix (with or without
    /// `mem_`).
    async fn get_memory(&self, agent: &str, id: &str) -> Result<MemoryRecord, StoreError>;

    /// Memories of `agent` (of one person, when given), newest first.
    async fn list_memories(
        &self,
        agent: &str,
        user_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MemoryRecord>, StoreError>;

    /// Memories by row number, with those numbers (missing rows are left
    /// out: a memory forgotten since the index saw it).
    async fn memories_by_rowid(
        &self,
        rowids: &[i64],
    ) -> Result<Vec<(i64, MemoryRecord)>, StoreError>;

    /// How many facts (of every agent) hold each of `terms`, counted up to
    /// `cap` (a count of `cap` means "at least"), and how many facts there
    /// are: what the full-text side's word weights (BM25's IDF) are made of.
    /// One round trip. `terms` are index terms (`index_terms`' output).
    async fn memory_term_counts(
        &self,
        terms: &[String],
        cap: i64,
    ) -> Result<TermCounts, StoreError>;

    /// Full-text search over the memories of `agent` for facts holding any
    /// of `terms` (index terms, as `index_terms` makes them): row numbers with
    /// their BM25 score (higher is better), best first. With `person`
    /// (`Some(None)`: the local owner), only that person's facts and shared
    /// ones are candidates, so others' facts cannot crowd theirs out.
    async fn search_memory_text(
        &self,
        agent: &str,
        person: Option<Option<&str>>,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError>;

    /// Up to `limit` embeddings made by `model` stored after row `after`,
    /// in row order.
    async fn memory_vectors(
        &self,
        model: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredVector>, StoreError>;

    /// How many memories were ever added and removed (by any process): an
    /// index that saw the same `removed` count may just append rows.
    async fn memory_generation(&self) -> Result<(i64, i64), StoreError>;

    /// Whether `agent` keeps any memory.
    async fn has_memories(&self, agent: &str) -> Result<bool, StoreError>;

    /// Marks a memory as saved again: newer, at least as important, and
    /// shared if it is saved as shared now.
    async fn refresh_memory(
        &self,
        id: &str,
        importance: f64,
        shared: bool,
    ) -> Result<MemoryRecord, StoreError>;

    /// Memories of `agent` without an embedding from `model` (saved before
    /// an embedder was configured, or by another model).
    async fn memories_missing_vectors(
        &self,
        agent: &str,
        model: &str,
        limit: i64,
    ) -> Result<Vec<(i64, MemoryRecord)>, StoreError>;

    /// Stores the embedding of a memory row.
    async fn set_memory_vector(
        &self,
        rowid: i64,
        model: &str,
        vector: &[f32],
    ) -> Result<(), StoreError>;

    /// Every message of `agent`'s sessions: `(session, seq, created_at,
    /// message)`, oldest first.
    async fn agent_messages(
        &self,
        agent: &str,
    ) -> Result<Vec<(String, i64, i64, cairn_core::Message)>, StoreError>;

    /// Adds messages not yet in the episodic index to it; returns how many.
    async fn index_messages(&self) -> Result<usize, StoreError>;

    /// Full-text search over every message's text, best first (indexes
    /// what is new first).
    async fn search_messages(
        &self,
        query: &str,
        filter: &MessageFilter,
        limit: i64,
    ) -> Result<Vec<MessageHit>, StoreError>;
}

/// The columns `MemoryRow` holds (a macro, so queries stay `&'static str`).
macro_rules! memory_columns {
    () => {
        "rowid, id, agent, user_id, text, importance, source, created_at, updated_at, shared"
    };
}
pub(crate) use memory_columns;

/// A memory row as `memory_columns!` selects it.
pub(crate) type MemoryRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    f64,
    Option<String>,
    i64,
    i64,
    bool,
);

/// A memory (with its rowid) from its row.
pub(crate) fn memory_from_row(r: MemoryRow) -> (i64, MemoryRecord) {
    (
        r.0,
        MemoryRecord {
            id: r.1,
            agent: r.2,
            user_id: r.3,
            text: r.4,
            importance: r.5,
            source: r.6,
            created_at: r.7,
            updated_at: r.8,
            shared: r.9,
        },
    )
}

/// The one memory an id or prefix names (an exact id sorts first).
pub(crate) fn one_memory(found: Vec<MemoryRow>, id: &str) -> Result<MemoryRecord, StoreError> {
    let found: Vec<MemoryRecord> = found.into_iter().map(|r| memory_from_row(r).1).collect();
    match found.as_slice() {
        [] => Err(StoreError::NotFound {
            what: "memory",
            id: id.to_string(),
        }),
        // An exact id sorts first and wins over longer ids it prefixes.
        [first, ..] if first.id == id => Ok(first.clone()),
        [one] => Ok(one.clone()),
        _ => Err(StoreError::Ambiguous {
            what: "memory",
            prefix: id.to_string(),
            count: 2,
        }),
    }
}

/// A stored vector row: rowid, agent, owner, shared, embedding.
pub(crate) type VectorRow = (i64, String, String, bool, Vec<u8>);

/// A stored vector from its row.
pub(crate) fn vector_from_row(r: VectorRow) -> StoredVector {
    StoredVector {
        rowid: r.0,
        agent: r.1,
        owner: r.2,
        shared: r.3,
        vector: blob_to_vector(&r.4),
    }
}

/// A message search hit row: session_id, seq, text, agent, run_id, role,
/// created_at.
pub(crate) type HitRow = (String, i64, String, String, Option<String>, String, i64);

/// A message hit from its row.
pub(crate) fn hit_from_row(r: HitRow) -> MessageHit {
    MessageHit {
        session_id: r.0,
        seq: r.1,
        text: r.2,
        agent: r.3,
        run_id: r.4,
        role: r.5,
        created_at: r.6,
    }
}

/// Stored messages, decoded: (session_id, seq, created_at, message).
pub(crate) fn decode_agent_messages(
    rows: Vec<(String, i64, i64, String)>,
) -> Result<Vec<(String, i64, i64, cairn_core::Message)>, StoreError> {
    rows.into_iter()
        .map(|(session, seq, at, content)| {
            Ok((
                session,
                seq,
                at,
                serde_json::from_str(&content).map_err(|e| StoreError::corrupt("messages", e))?,
            ))
        })
        .collect()
}

/// What of a message episodic search sees: its text and tool results.
pub(crate) fn searchable_text(m: &cairn_core::Message) -> String {
    m.content
        .iter()
        .filter_map(|b| match b {
            cairn_core::ContentBlock::Text { text } => Some(text.as_str()),
            cairn_core::ContentBlock::ToolResult { content, .. } => Some(content.as_str()),
            cairn_core::ContentBlock::ToolUse { .. } => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Messages not yet in the episodic index, as (session, seq, text).
pub(crate) fn episodic_docs(
    rows: Vec<(String, i64, String)>,
) -> Result<Vec<(String, i64, String)>, StoreError> {
    rows.into_iter()
        .map(|(session, seq, content)| {
            let message: cairn_core::Message =
                serde_json::from_str(&content).map_err(|e| StoreError::corrupt("messages", e))?;
            Ok((session, seq, searchable_text(&message)))
        })
        .collect()
}
