//! What agents remember beyond one conversation.
//!
//! - **Semantic**: facts, saved by the agent (`memory_save`), a person
//!   (`cairn memory save`) or an import; de-duplicated per agent (same
//!   normalised text, or an embedding almost identical to one kept).
//! - **Hybrid search**: full-text (SQLite FTS5, BM25, function words
//!   dropped) and vector similarity, each on an absolute scale, weighed
//!   together; importance and recency break ties; a relevance floor keeps
//!   noise out of the prompt.
//! - **Episodic**: every message of every session, full-text searchable
//!   with filters (agent, session, person, time).
//! - **Procedural**: skills, markdown files the model loads on demand.

pub mod embed;
mod error;
pub mod index;
mod portable;
mod search;
pub mod skills;
pub mod terms;

use std::sync::Arc;

use cairn_core::ids::new_id;
use cairn_core::{MemoryRecord, MessageFilter, MessageHit};
use cairn_store::{NewMemory, SavedMemory, Store};
use sha2::{Digest, Sha256};

pub use embed::{CachedEmbedder, Embedder, LocalEmbedder, RemoteEmbedder};
pub use error::MemoryError;
pub use index::VectorIndex;

/// Longest fact kept, in bytes. Memories are facts, not documents: a
/// document belongs in the workspace, with a fact that says where it is.
pub const MAX_MEMORY_BYTES: usize = 8 * 1024;

/// Cosine similarity from which a new fact counts as one already kept.
pub const NEAR_DUPLICATE: f32 = 0.95;

/// A fact to save.
#[derive(Debug, Clone)]
pub struct SaveMemory {
    /// Agent keeping it.
    pub agent: String,
    /// Person it is about.
    pub user_id: Option<String>,
    /// The fact.
    pub text: String,
    /// 0..=1 (default 0.5).
    pub importance: Option<f64>,
    /// Where it came from.
    pub source: Option<String>,
    /// First and last saved (ms), when restoring an export; else now.
    pub times: Option<(i64, i64)>,
    /// Seen by everyone the agent works for (only the local owner may say so).
    pub shared: bool,
}

/// Memory of every agent in one store.
pub struct Memory {
    store: Store,
    embedder: Option<Arc<dyn Embedder>>,
    index: tokio::sync::Mutex<Option<VectorIndex>>,
    fusion: Fusion,
}

impl Memory {
    /// Memory over `store`; without an embedder search is full-text only.
    /// Words and meaning are weighed as tuned for the embedder's model.
    pub fn new(store: Store, embedder: Option<Arc<dyn Embedder>>) -> Memory {
        let fusion = embedder
            .as_ref()
            .map_or_else(Fusion::default, |e| Fusion::for_model(e.model_id()));
        Memory {
            store,
            embedder,
            index: tokio::sync::Mutex::new(None),
            fusion,
        }
    }

    /// The same memory weighing words and meaning with `fusion`.
    pub fn with_fusion(mut self, fusion: Fusion) -> Memory {
        self.fusion = fusion;
        self
    }

    /// How this memory weighs words and meaning.
    pub fn fusion(&self) -> Fusion {
        self.fusion
    }

    /// The embedder, if one is configured.
    pub fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.embedder.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Checks a fact and gives its dedup hash and cleaned text.
    pub fn prepare(text: &str) -> Result<(String, String), MemoryError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MemoryError::Invalid("a memory cannot be empty".into()));
        }
        if text.len() > MAX_MEMORY_BYTES {
            return Err(MemoryError::Invalid(format!(
                "a memory is at most {MAX_MEMORY_BYTES} bytes; this one is {}. Save the key facts, \
                 or write the document to a file and save where it is",
                text.len()
            )));
        }
        Ok((text.to_string(), fact_hash(text)))
    }

    /// Saves a fact, or refreshes the one already kept that says the same.
    pub async fn save(&self, req: SaveMemory) -> Result<SavedMemory, MemoryError> {
        let mut saved = self.save_many(vec![req]).await?;
        saved
            .pop()
            .ok_or_else(|| MemoryError::Invalid("nothing saved".into()))
    }

    /// Saves several facts in one transaction (all or none), embedding them
    /// in batches.
    pub async fn save_many(&self, reqs: Vec<SaveMemory>) -> Result<Vec<SavedMemory>, MemoryError> {
        let mut rows = Vec::with_capacity(reqs.len());
        for r in &reqs {
            let (text, hash) = Memory::prepare(&r.text)?;
            let importance = r.importance.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&importance) {
                return Err(MemoryError::Invalid(format!(
                    "importance must be between 0 and 1, not {importance}"
                )));
            }
            cairn_core::ids::validate_name("agent", &r.agent)
                .map_err(|e| MemoryError::Invalid(e.to_string()))?;
            rows.push(NewMemory {
                id: new_id("mem"),
                agent: r.agent.clone(),
                user_id: r.user_id.clone(),
                text,
                hash,
                importance,
                source: r.source.clone(),
                embedding: None,
                embed_model: None,
                times: r.times,
                shared: r.shared,
            });
        }
        let mut out: Vec<Option<SavedMemory>> = vec![None; rows.len()];
        if let Some(embedder) = &self.embedder {
            let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
            let vectors = embedder.embed(&texts).await?;
            let guard = self.synced_index(None).await?;
            // Near-duplicates of facts already kept refresh those instead.
            for (i, (row, v)) in rows.iter_mut().zip(vectors).enumerate() {
                // Only the same person's facts count: two people saying the
                // same thing are two facts, each theirs.
                let near: Vec<i64> = guard
                    .as_ref()
                    .map(|ix| ix.search_scoped(&row.agent, Some(row.user_id.as_deref()), &v, 8))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(_, score)| *score >= NEAR_DUPLICATE)
                    .map(|(rowid, _)| rowid)
                    .collect();
                let same_person = self
                    .store
                    .memories_by_rowid(&near)
                    .await?
                    .into_iter()
                    .find(|(_, m)| m.user_id == row.user_id);
                if let Some((_, kept)) = same_person {
                    let kept = self
                        .store
                        .refresh_memory(&kept.id, row.importance, row.shared)
                        .await?;
                    out[i] = Some(SavedMemory::Duplicate(kept));
                    continue;
                }
                row.embedding = Some(v);
                row.embed_model = Some(embedder.model_id().to_string());
            }
            drop(guard);
        }
        let fresh: Vec<NewMemory> = rows
            .iter()
            .zip(&out)
            .filter(|(_, o)| o.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        let mut stored = self.store.save_memories(&fresh).await?.into_iter();
        Ok(out
            .into_iter()
            .filter_map(|o| o.or_else(|| stored.next()))
            .collect())
    }

    /// Forgets a fact of `agent` by id (or unique id prefix), if `scope`
    /// may change it (a person: only their own facts).
    pub async fn forget(
        &self,
        agent: &str,
        scope: &Scope,
        id: &str,
    ) -> Result<MemoryRecord, MemoryError> {
        let found = self.store.get_memory(agent, id).await?;
        if !scope.owns(&found) {
            // Said as "not found": another person's fact stays invisible.
            return Err(cairn_store::StoreError::NotFound {
                what: "memory",
                id: id.to_string(),
            }
            .into());
        }
        Ok(self.store.forget_memory(agent, &found.id).await?)
    }

    /// Facts of `agent`, newest first.
    pub async fn list(
        &self,
        agent: &str,
        user_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MemoryRecord>, MemoryError> {
        Ok(self.store.list_memories(agent, user_id, limit).await?)
    }

    /// Full-text search over every message.
    pub async fn search_messages(
        &self,
        query: &str,
        filter: &MessageFilter,
        limit: i64,
    ) -> Result<Vec<MessageHit>, MemoryError> {
        Ok(self.store.search_messages(query, filter, limit).await?)
    }

    /// Embeds facts saved without an embedding of the current model (saved
    /// before one was configured, or with another); returns how many.
    pub async fn reindex(&self, agent: &str) -> Result<usize, MemoryError> {
        let Some(embedder) = &self.embedder else {
            return Err(MemoryError::NoEmbedder);
        };
        let mut done = 0;
        loop {
            let batch = self
                .store
                .memories_missing_vectors(agent, embedder.model_id(), 256)
                .await?;
            if batch.is_empty() {
                break;
            }
            let texts: Vec<String> = batch.iter().map(|(_, m)| m.text.clone()).collect();
            let vectors = embedder.embed(&texts).await?;
            for ((rowid, _), v) in batch.iter().zip(vectors) {
                self.store
                    .set_memory_vector(*rowid, embedder.model_id(), &v)
                    .await?;
            }
            done += batch.len();
        }
        // Rows changed in place: rebuild the index from scratch next time.
        *self.index.lock().await = None;
        Ok(done)
    }

    /// The index, created and brought up to date (to `generation` when the
    /// caller just read it); `None` without embedder.
    async fn synced_index(
        &self,
        generation: Option<(i64, i64)>,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<VectorIndex>>, MemoryError> {
        let mut guard = self.index.lock().await;
        if let Some(embedder) = self.embedder.as_ref().filter(|e| e.dims() > 0) {
            let index =
                guard.get_or_insert_with(|| VectorIndex::new(embedder.model_id(), embedder.dims()));
            match generation {
                Some(g) => index.sync_to(&self.store, g).await?,
                None => index.sync(&self.store).await?,
            }
        }
        Ok(guard)
    }
}

/// The dedup key of a fact: its text lower-cased, whitespace collapsed,
/// trailing punctuation dropped.
pub fn fact_hash(text: &str) -> String {
    let norm = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let norm = norm.trim_end_matches(['.', '!', '?', ';', ',']);
    let digest = Sha256::digest(norm.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

pub use portable::{ExportSummary, export_markdown, import_markdown};
pub use search::{Candidate, Candidates, Fusion, Scope, SearchOptions, format_for_prompt, rank};
