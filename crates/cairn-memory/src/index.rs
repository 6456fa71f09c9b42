//! The vector side of hybrid search: every embedding of one model held in
//! one contiguous array and scanned exactly. Exact search needs no tuning,
//! has recall 1 by construction, and at the sizes one agent host keeps
//! (10⁵ facts) a full scan is a few milliseconds; see bench/ for the
//! measurement against an approximate index. Rebuilt from the store at
//! start and caught up incrementally as memories are added.

use std::collections::HashMap;

use cairn_store::{Store, StoreError};

/// In-memory exact index over one embedding model's vectors.
pub struct VectorIndex {
    model: String,
    dims: usize,
    rowids: Vec<i64>,
    agents: Vec<u32>,
    data: Vec<f32>,
    agent_ids: HashMap<String, u32>,
    /// `(count, highest rowid)` of the memories table when last synced.
    seen: (i64, i64),
}

impl VectorIndex {
    /// An empty index for vectors of `model` with `dims` values.
    pub fn new(model: &str, dims: usize) -> VectorIndex {
        VectorIndex {
            model: model.to_string(),
            dims,
            rowids: Vec::new(),
            agents: Vec::new(),
            data: Vec::new(),
            agent_ids: HashMap::new(),
            seen: (-1, -1),
        }
    }

    /// Number of vectors held.
    pub fn len(&self) -> usize {
        self.rowids.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rowids.is_empty()
    }

    /// Adds one vector (ignored if its length is wrong).
    pub fn add(&mut self, rowid: i64, agent: &str, vector: &[f32]) {
        if vector.len() != self.dims {
            return;
        }
        let next = self.agent_ids.len() as u32;
        let agent = *self.agent_ids.entry(agent.to_string()).or_insert(next);
        self.rowids.push(rowid);
        self.agents.push(agent);
        self.data.extend_from_slice(vector);
    }

    /// Brings the index up to date with the store: new rows are appended;
    /// if any row was deleted (by any process) it is rebuilt.
    pub async fn sync(&mut self, store: &Store) -> Result<(), StoreError> {
        let now = store.memory_generation().await?;
        if now == self.seen {
            return Ok(());
        }
        let (count, _) = self.seen;
        let added_since = if self.seen.1 >= 0 {
            store.memories_after(self.seen.1).await?
        } else {
            -1
        };
        let appended_only = self.seen.1 >= 0 && now.0 == count + added_since;
        let after = if appended_only {
            self.seen.1
        } else {
            self.rowids.clear();
            self.agents.clear();
            self.data.clear();
            0
        };
        for v in store.memory_vectors(&self.model, after).await? {
            self.add(v.rowid, &v.agent, &v.vector);
        }
        self.seen = now;
        Ok(())
    }

    /// The `k` rows of `agent` most similar to `query` (cosine, as the
    /// vectors are normalised), best first.
    pub fn search(&self, agent: &str, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        let Some(&agent) = self.agent_ids.get(agent) else {
            return vec![];
        };
        if query.len() != self.dims || k == 0 {
            return vec![];
        }
        // A bounded min-heap keeps the best k without sorting everything.
        let mut best: std::collections::BinaryHeap<Scored> = std::collections::BinaryHeap::new();
        for (i, v) in self.data.chunks_exact(self.dims).enumerate() {
            if self.agents[i] != agent {
                continue;
            }
            let s = dot(query, v);
            if best.len() < k {
                best.push(Scored(s, i));
            } else if best.peek().is_some_and(|w| s > w.0) {
                best.pop();
                best.push(Scored(s, i));
            }
        }
        let mut out: Vec<(i64, f32)> = best
            .into_iter()
            .map(|Scored(s, i)| (self.rowids[i], s))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

/// A score with its position; ordered so the heap's top is the worst.
struct Scored(f32, usize);

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0)
    }
}

/// Dot product with eight independent sums, which the compiler turns into
/// SIMD (a single running sum cannot be reordered, so it would not).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}
