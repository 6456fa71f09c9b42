//! Hybrid search: every candidate fact gets two pieces of evidence on
//! absolute scales, and their weighted sum is its relevance.
//!
//! - **Words**: the query's content words (function words dropped, see
//!   `terms`) looked up in the full-text index; a fact's BM25 score divided
//!   by the score a fact holding every query word once would get. That is
//!   about the share of the query's word weight (IDF) the fact holds: 1 when
//!   it holds every word, 0.2 when it holds only a common one.
//! - **Meaning**: the cosine of the query's and the fact's embeddings,
//!   mapped from `cosine_zero..cosine_one` onto 0..1. Facts the full-text
//!   side found get their cosine too, so each side checks the other.
//!
//! Rank fusion (RRF) gave the first full-text hit the weight of the first
//! semantic hit however weak it was: a fact sharing only "on" with a
//! question outranked the fact that answered it. Scores on absolute scales
//! let a weak match stay weak, and give a floor: below it, nothing is
//! recalled into the prompt. Importance and recency only break near-ties.
//! The weights were chosen on the tuning half of the labelled set in
//! `bench/data/recall/` and are reported on the other half
//! (`cairn-bench recall`).

use std::collections::HashMap;

use cairn_core::{MemoryHit, MemoryRecord, now_ms};

use crate::terms::query_terms;
use crate::{Memory, MemoryError};

/// Candidates taken from each side.
const CANDIDATES: usize = 50;

/// A word found in more than 1/COMMON_SHARE of the facts (at least
/// COMMON_MIN, at most COMMON_MAX facts) is left out of the full-text query
/// when there are embeddings: ranking every match of a word that common
/// costs about a microsecond per match and says little.
const COMMON_SHARE: i64 = 500;
const COMMON_MIN: i64 = 100;
const COMMON_MAX: i64 = 1000;

/// Words are counted up to this many facts for their weight without
/// embeddings (a word in more facts weighs next to nothing anyway).
const COUNT_CAP: i64 = 1000;

/// Weight of importance and recency (each 0..1, averaged) added to the
/// relevance: enough to order facts equally relevant, too little to lift a
/// less relevant one over a more relevant one.
const TIE_BREAK: f64 = 0.02;

/// How the two sides are weighed. The defaults are tuned for
/// all-MiniLM-L6-v2 (see the module documentation); another model spreads
/// its cosines differently and may want other `cosine_*` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    /// Share of meaning in the relevance (the rest is words).
    pub semantic_weight: f64,
    /// Cosine at or below which a fact is unrelated in meaning.
    pub cosine_zero: f32,
    /// Cosine from which a fact is as related as can be.
    pub cosine_one: f32,
    /// Word evidence below this counts only when the meaning agrees
    /// (cosine at least `lexical_gate`): a lone weak word match is no
    /// evidence.
    pub min_lexical: f64,
    /// Cosine from which weak word evidence counts.
    pub lexical_gate: f32,
    /// Relevance below which a fact is not recalled into the prompt...
    pub floor: f64,
    /// ...unless it is the best fact, at least this relevant, and ahead of
    /// the next by `standout_margin`: an answer stands out from the rest,
    /// while noise for a question nothing answers is flat.
    pub standout_floor: f64,
    /// See `standout_floor`.
    pub standout_margin: f64,
    /// The same floor when there are no embeddings (words only).
    pub words_floor: f64,
}

impl Default for Fusion {
    fn default() -> Self {
        // Chosen by `cairn-bench recall --tune` on the tuning half of the
        // labelled set with all-MiniLM-L6-v2; the floors keep the most
        // answers plus empty recalls for questions without one.
        Fusion {
            semantic_weight: 0.7,
            cosine_zero: 0.1,
            cosine_one: 0.5,
            min_lexical: 0.5,
            lexical_gate: 0.5,
            floor: 0.5,
            standout_floor: 0.2,
            standout_margin: 0.15,
            words_floor: 0.62,
        }
    }
}

impl Fusion {
    /// The weights tuned for the embedding model `model_id` names (the
    /// defaults, tuned for all-MiniLM-L6-v2, for any other): each model
    /// spreads cosines differently. all-mpnet-base-v2's come from the same
    /// `--tune` run on the same tuning half; it wants more weight on
    /// meaning and no weak word evidence at all.
    pub fn for_model(model_id: &str) -> Fusion {
        if model_id.to_ascii_lowercase().contains("mpnet") {
            return Fusion {
                semantic_weight: 0.85,
                cosine_zero: 0.2,
                cosine_one: 0.6,
                min_lexical: 1.01,
                lexical_gate: 0.3,
                floor: 0.56,
                standout_floor: 0.25,
                standout_margin: 0.1,
                words_floor: 0.62,
            };
        }
        Fusion::default()
    }
}

impl Fusion {
    /// How relevant a fact is (0..1) from its word evidence and its cosine
    /// (`None`: the fact has no vector of the current model, or there are
    /// no embeddings; it is then judged on words alone).
    pub fn relevance(&self, lexical: Option<f64>, cosine: Option<f32>) -> f64 {
        let lex = lexical.unwrap_or(0.0).clamp(0.0, 1.0);
        let Some(cos) = cosine else {
            return lex;
        };
        let span = (self.cosine_one - self.cosine_zero).max(1e-6);
        let sem = f64::from(((cos - self.cosine_zero) / span).clamp(0.0, 1.0));
        let lex = if lex >= self.min_lexical || cos >= self.lexical_gate {
            lex
        } else {
            0.0
        };
        self.semantic_weight * sem + (1.0 - self.semantic_weight) * lex
    }

    /// Which facts of one search a prompt gets, given their relevances in
    /// the order of the results (best first, all of them or at least the
    /// first two): those at or above the floor or, when none is, the first
    /// alone if it stands out from the second.
    pub fn recalled(&self, semantic: bool, relevances: &[f64]) -> Vec<bool> {
        let floor = self.floor_for(semantic);
        if !semantic || relevances.iter().any(|r| *r >= floor) {
            return relevances.iter().map(|r| *r >= floor).collect();
        }
        let first = relevances.first().copied().unwrap_or(0.0);
        let second = relevances.get(1).copied().unwrap_or(0.0);
        let stands_out = first >= self.standout_floor && first - second >= self.standout_margin;
        (0..relevances.len())
            .map(|i| i == 0 && stands_out)
            .collect()
    }

    /// The floor that applies to a search with or without embeddings.
    pub fn floor_for(&self, semantic: bool) -> f64 {
        if semantic {
            self.floor
        } else {
            self.words_floor
        }
    }
}

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
    /// How words and meaning are weighed; `None`: the memory's own.
    pub fusion: Option<Fusion>,
    /// Only facts at or above the relevance floor (recall into a prompt);
    /// otherwise every fact with any evidence, best first.
    pub relevant_only: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            scope: Scope::Everyone,
            limit: 10,
            half_life_days: 30.0,
            fusion: None,
            relevant_only: false,
        }
    }
}

/// A fact one of the two sides found, with the evidence of both.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The fact.
    pub memory: MemoryRecord,
    /// Rank among the full-text hits (1-based).
    pub text_rank: Option<usize>,
    /// Share of the query's word weight it holds (0..1), if a text hit.
    pub lexical: Option<f64>,
    /// Rank among the nearest vectors (1-based).
    pub vector_rank: Option<usize>,
    /// Cosine with the query, if it has a vector of the current model.
    pub cosine: Option<f32>,
}

/// The candidates of one search, before fusion.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// Whether the query was embedded (meaning was searched).
    pub semantic: bool,
    /// Every fact either side found.
    pub facts: Vec<Candidate>,
}

impl Memory {
    /// The facts of `agent` most relevant to `query`, best first.
    pub async fn search(
        &self,
        agent: &str,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<MemoryHit>, MemoryError> {
        if opts.limit == 0 {
            return Ok(vec![]);
        }
        let found = self.candidates(agent, query, &opts.scope).await?;
        let opts = SearchOptions {
            fusion: Some(opts.fusion.unwrap_or(self.fusion)),
            ..opts.clone()
        };
        Ok(rank(&found, &opts, now_ms()))
    }

    /// What each side finds for `query` among the facts `scope` sees, with
    /// the evidence of both sides for every fact either found.
    pub async fn candidates(
        &self,
        agent: &str,
        query: &str,
        scope: &Scope,
    ) -> Result<Candidates, MemoryError> {
        if query.trim().is_empty() {
            return Ok(Candidates::default());
        }
        // One read serves the common-word cap and the index's sync.
        let generation = self.store.memory_generation().await?;
        // The full-text side waits on the store's reader threads while the
        // query is embedded on this one: run them together.
        let (text, q) = tokio::join!(
            self.text_side(agent, query, scope, generation),
            self.embed_query(query)
        );
        let (text, q) = (text?, q?);
        let mut rowids: Vec<i64> = text.iter().map(|(r, _)| *r).collect();
        let mut vector: Vec<(i64, f32)> = vec![];
        let mut cosines: HashMap<i64, f32> = HashMap::new();
        if let Some(q) = &q {
            let guard = self.synced_index(Some(generation)).await?;
            if let Some(ix) = guard.as_ref() {
                vector = ix.search_scoped(agent, scope.person(), q, CANDIDATES);
                for (rowid, cos) in rowids.iter().zip(ix.similarities(agent, q, &rowids)) {
                    if let Some(cos) = cos {
                        cosines.insert(*rowid, cos);
                    }
                }
            }
        }
        cosines.extend(vector.iter().copied());
        rowids.extend(vector.iter().map(|(r, _)| *r));
        let records = self.store.memories_by_rowid(&rowids).await?;
        let facts = records
            .into_iter()
            .filter(|(_, m)| scope.sees(m))
            .map(|(rowid, memory)| {
                let text_at = text.iter().position(|(r, _)| *r == rowid);
                Candidate {
                    memory,
                    text_rank: text_at.map(|i| i + 1),
                    lexical: text_at.map(|i| text[i].1),
                    vector_rank: vector.iter().position(|(r, _)| *r == rowid).map(|i| i + 1),
                    cosine: cosines.get(&rowid).copied(),
                }
            })
            .collect();
        Ok(Candidates {
            semantic: q.is_some(),
            facts,
        })
    }

    /// The query's embedding, if there is an embedder.
    async fn embed_query(&self, query: &str) -> Result<Option<Vec<f32>>, MemoryError> {
        let Some(embedder) = &self.embedder else {
            return Ok(None);
        };
        Ok(embedder.embed(&[query.to_string()]).await?.pop())
    }

    /// Full-text hits with their share of the query's word weight;
    /// `(added, removed)` are the store's counts, just read.
    async fn text_side(
        &self,
        agent: &str,
        query: &str,
        scope: &Scope,
        (added, removed): (i64, i64),
    ) -> Result<Vec<(i64, f64)>, MemoryError> {
        let terms = query_terms(query);
        if terms.is_empty() {
            return Ok(vec![]);
        }
        // Common words are left out only when meaning can stand in for them.
        let common = self
            .embedder
            .as_ref()
            .map(|_| ((added - removed) / COMMON_SHARE).clamp(COMMON_MIN, COMMON_MAX));
        let cap = common.unwrap_or(COUNT_CAP);
        let counts = self.store.memory_term_counts(&terms, cap + 1).await?;
        let mut kept = Vec::with_capacity(terms.len());
        let mut ideal = 0.0;
        for (term, n) in terms.into_iter().zip(counts.matching) {
            if common.is_some_and(|c| n > c) {
                continue;
            }
            ideal += idf(counts.facts, n);
            kept.push(term);
        }
        let hits = self
            .store
            .search_memory_text(agent, scope.person(), &kept, CANDIDATES as i64)
            .await?;
        Ok(hits
            .into_iter()
            // A fact shorter than average scores a little above the ideal;
            // it holds the whole query's weight all the same.
            .map(|(rowid, bm25)| {
                (
                    rowid,
                    if ideal > 0.0 {
                        (bm25 / ideal).min(1.0)
                    } else {
                        0.0
                    },
                )
            })
            .collect())
    }
}

/// A word's weight as the full-text index's BM25 computes it: rarer words
/// weigh more. A fact of average length holding a word once scores that
/// word's weight, so the sum over the query is what a fact holding every
/// word would score.
fn idf(facts: i64, holding: i64) -> f64 {
    let (n, h) = (facts as f64, holding as f64);
    let w = ((n - h + 0.5) / (h + 0.5)).ln();
    if w > 0.0 { w } else { 1e-6 }
}

/// The candidates as hits, best first: relevance plus a tie-break by
/// importance and recency. Facts without evidence (and, when asked, below
/// the floor) are left out.
pub fn rank(found: &Candidates, opts: &SearchOptions, now: i64) -> Vec<MemoryHit> {
    let fusion = opts.fusion.unwrap_or_default();
    let mut scored: Vec<(f64, f64, &Candidate)> = found
        .facts
        .iter()
        .filter_map(|c| {
            let cosine = if found.semantic { c.cosine } else { None };
            let relevance = fusion.relevance(c.lexical, cosine);
            if relevance <= 0.0 {
                return None;
            }
            let age_days = (now - c.memory.updated_at).max(0) as f64 / 86_400_000.0;
            let recency = 0.5f64.powf(age_days / opts.half_life_days.max(0.001));
            let tie = TIE_BREAK * (c.memory.importance.clamp(0.0, 1.0) + recency) / 2.0;
            Some((relevance + tie, relevance, c))
        })
        .collect();
    // Scores are compared to nine decimals: the backends compute BM25 in
    // different code (FTS5's C, PostgreSQL's SQL), so equal scores may
    // differ in the last bits and must not order facts differently. Equal
    // scores go to the stronger word evidence (BM25 prefers the shorter
    // fact), then the vector order, then the text, never the backend's
    // row order.
    let q = |x: f64| (x * 1e9).round() as i64;
    scored.sort_by(|a, b| {
        q(b.0)
            .cmp(&q(a.0))
            .then(q(b.2.lexical.unwrap_or(0.0)).cmp(&q(a.2.lexical.unwrap_or(0.0))))
            .then(
                a.2.vector_rank
                    .unwrap_or(usize::MAX)
                    .cmp(&b.2.vector_rank.unwrap_or(usize::MAX)),
            )
            .then(a.2.memory.text.cmp(&b.2.memory.text))
    });
    if opts.relevant_only {
        let relevances: Vec<f64> = scored.iter().map(|s| s.1).collect();
        let mut recalled = fusion.recalled(found.semantic, &relevances).into_iter();
        scored.retain(|_| recalled.next().unwrap_or(false));
    }
    scored
        .into_iter()
        .take(opts.limit)
        .map(|(score, relevance, c)| MemoryHit {
            memory: c.memory.clone(),
            score,
            relevance,
            text_rank: c.text_rank,
            lexical: c.lexical,
            vector_rank: c.vector_rank,
            cosine: c.cosine,
        })
        .collect()
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
