//! Hybrid search: BM25 full-text ranks and vector-similarity ranks fused by
//! reciprocal rank fusion (RRF), then weighed by importance and recency.
//! RRF needs no score calibration between the two lists, which have
//! incomparable scales.

use std::collections::HashMap;

use cairn_core::{MemoryHit, MemoryRecord, now_ms};

use crate::{Memory, MemoryError};

/// RRF's constant: damps the weight of the very first ranks.
const RRF_K: f64 = 60.0;

/// Candidates taken from each list before fusing.
const CANDIDATES: usize = 50;

/// A word found in more than 1/COMMON_SHARE of the facts (at least
/// COMMON_MIN, at most COMMON_MAX facts) is left out of the full-text query
/// when there are embeddings (see `Store::search_memory_text`).
const COMMON_SHARE: i64 = 500;
const COMMON_MIN: i64 = 100;
const COMMON_MAX: i64 = 1000;

/// Vector candidates below this cosine are not evidence of relevance.
const MIN_COSINE: f32 = 0.2;

/// Whose facts a search or a change may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every fact of the agent: the operator's views (CLI, API).
    #[default]
    Everyone,
    /// The facts of one person (`None`: the local owner) plus shared ones:
    /// what an agent working for that person may recall, search or forget.
    Person(Option<String>),
}

impl Scope {
    /// The person whose facts (plus shared ones) are searched; `None`: all.
    pub fn person(&self) -> Option<Option<&str>> {
        match self {
            Scope::Everyone => None,
            Scope::Person(p) => Some(p.as_deref()),
        }
    }

    /// Whether a search in this scope may return `m`.
    pub fn sees(&self, m: &MemoryRecord) -> bool {
        match self {
            Scope::Everyone => true,
            Scope::Person(p) => m.shared || &m.user_id == p,
        }
    }

    /// Whether this scope may change or forget `m` (shared facts are the
    /// owner's to change).
    pub fn owns(&self, m: &MemoryRecord) -> bool {
        match self {
            Scope::Everyone => true,
            Scope::Person(p) => &m.user_id == p,
        }
    }
}

/// How a search is run.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Whose facts are searched.
    pub scope: Scope,
    /// Results wanted.
    pub limit: usize,
    /// Age at which recency counts half, in days.
    pub half_life_days: f64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            scope: Scope::Everyone,
            limit: 10,
            half_life_days: 30.0,
        }
    }
}

impl Memory {
    /// The facts of `agent` most relevant to `query`, best first.
    pub async fn search(
        &self,
        agent: &str,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<MemoryHit>, MemoryError> {
        if query.trim().is_empty() || opts.limit == 0 {
            return Ok(vec![]);
        }
        // Common words are pruned only when meaning can stand in for them.
        let generation = match &self.embedder {
            None => None,
            Some(_) => Some(self.store.memory_generation().await?),
        };
        let common = generation.map(|(added, removed)| {
            ((added - removed) / COMMON_SHARE).clamp(COMMON_MIN, COMMON_MAX)
        });
        // The full-text side waits on the store's reader threads while the
        // vector side scans on this one: run them together.
        let text_side = self.store.search_memory_text(
            agent,
            opts.scope.person(),
            query,
            CANDIDATES as i64,
            common,
        );
        let vector_side = async {
            let Some(embedder) = &self.embedder else {
                return Ok::<_, MemoryError>(vec![]);
            };
            let q = embedder
                .embed(&[query.to_string()])
                .await?
                .pop()
                .unwrap_or_default();
            let guard = self.synced_index(generation).await?;
            Ok(guard
                .as_ref()
                .map(|ix| ix.search(agent, &q, CANDIDATES))
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, s)| *s >= MIN_COSINE)
                .map(|(rowid, _)| rowid)
                .collect::<Vec<i64>>())
        };
        let (text, vector) = tokio::join!(text_side, vector_side);
        let (text, vector) = (text?, vector?);
        let mut fused: HashMap<i64, (f64, Option<usize>, Option<usize>)> = HashMap::new();
        for (i, rowid) in text.iter().enumerate() {
            let e = fused.entry(*rowid).or_default();
            e.0 += 1.0 / (RRF_K + i as f64 + 1.0);
            e.1 = Some(i + 1);
        }
        for (i, rowid) in vector.iter().enumerate() {
            let e = fused.entry(*rowid).or_default();
            e.0 += 1.0 / (RRF_K + i as f64 + 1.0);
            e.2 = Some(i + 1);
        }
        let rowids: Vec<i64> = fused.keys().copied().collect();
        let now = now_ms();
        let mut hits: Vec<MemoryHit> = self
            .store
            .memories_by_rowid(&rowids)
            .await?
            .into_iter()
            .filter(|(_, m)| opts.scope.sees(m))
            .filter_map(|(rowid, m)| {
                let (rrf, text_rank, vector_rank) = *fused.get(&rowid)?;
                let age_days = (now - m.updated_at).max(0) as f64 / 86_400_000.0;
                let recency = 0.5f64.powf(age_days / opts.half_life_days.max(0.001));
                let score = rrf * (0.75 + 0.25 * m.importance) * (0.75 + 0.25 * recency);
                Some(MemoryHit {
                    memory: m,
                    score,
                    text_rank,
                    vector_rank,
                })
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(opts.limit);
        Ok(hits)
    }
}

/// The hits as a block for the system prompt, within `budget` bytes (whole
/// lines only); `None` when there is nothing to say.
pub fn format_for_prompt(hits: &[MemoryHit], budget: usize) -> Option<String> {
    let mut out = String::from(
        "Things you remember that may be relevant (saved earlier; use memory_search for more):\n",
    );
    let header = out.len();
    for h in hits {
        let line = format!("- {} [{}]\n", h.memory.text.replace('\n', " "), h.memory.id);
        if out.len() + line.len() > budget {
            break;
        }
        out.push_str(&line);
    }
    (out.len() > header).then_some(out)
}
