//! Memory at scale: 100,000 facts with 384-dimensional embeddings in the
//! store, hybrid search latency (full-text + vector, fused), recall of the
//! vector side against a naive exact ranking, index build time and RSS,
//! compared with sqlite-vec in the same run; and the real model's embedding
//! throughput on this CPU.
//!
//! The 100,000 vectors are synthetic (clustered, normalised): embedding that
//! many sentences with the real model would take minutes and measure the
//! model, not the index. The model is measured on its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use async_trait::async_trait;
use cairn_memory::{Embedder, LocalEmbedder, Memory, MemoryError, SearchOptions, VectorIndex};
use cairn_store::{NewMemory, Store};

use crate::{median, percentile, status_kib};

/// This process's anonymous resident memory (heap; not the database file
/// the store maps, which is page cache shared with the OS).
fn rss_anon_kib() -> i64 {
    status_kib(std::process::id(), "RssAnon:").unwrap_or(0)
}

const FACTS: usize = 100_000;
const DIMS: usize = 384;
const QUERIES: usize = 300;
const K: usize = 10;

/// Deterministic xorshift: the same data every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Query vectors by query text: the benchmark's embedder, so search timing
/// excludes the model (measured separately).
struct Precomputed(HashMap<String, Vec<f32>>);

#[async_trait]
impl Embedder for Precomputed {
    fn model_id(&self) -> &str {
        "bench:synthetic"
    }
    fn dims(&self) -> usize {
        DIMS
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        texts
            .iter()
            .map(|t| {
                self.0
                    .get(t)
                    .cloned()
                    .ok_or_else(|| MemoryError::Model(format!("no vector for {t:?}")))
            })
            .collect()
    }
}

struct Data {
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
    queries: Vec<(String, Vec<f32>)>,
}

fn synthetic() -> Data {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let words: Vec<String> = (0..5000).map(|i| format!("w{i:04x}")).collect();
    let centroids: Vec<Vec<f32>> = (0..1000)
        .map(|_| normalised((0..DIMS).map(|_| rng.unit()).collect()))
        .collect();
    let mut texts = Vec::with_capacity(FACTS);
    let mut vectors = Vec::with_capacity(FACTS);
    for i in 0..FACTS {
        let c = &centroids[rng.below(centroids.len())];
        vectors.push(normalised(
            c.iter().map(|x| x + 0.08 * rng.unit()).collect(),
        ));
        // Zipf-like: low word numbers are common, high ones rare.
        let t: Vec<&str> = (0..10)
            .map(|_| {
                let r = rng.below(words.len());
                words[r * r / words.len()].as_str()
            })
            .collect();
        texts.push(format!("fact {i} {}", t.join(" ")));
    }
    let queries = (0..QUERIES)
        .map(|q| {
            let i = rng.below(FACTS);
            let v = normalised(vectors[i].iter().map(|x| x + 0.05 * rng.unit()).collect());
            let picked: Vec<&str> = texts[i].split(' ').skip(2).take(3).collect();
            (format!("q{q} {}", picked.join(" ")), v)
        })
        .collect();
    Data {
        texts,
        vectors,
        queries,
    }
}

/// The true top-k by sorting every similarity.
fn naive_top(vectors: &[Vec<f32>], q: &[f32], k: usize) -> Vec<usize> {
    let mut all: Vec<(usize, f32)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i, v.iter().zip(q).map(|(a, b)| a * b).sum()))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all.into_iter().take(k).map(|(i, _)| i).collect()
}

fn recall(found: &[usize], truth: &[usize]) -> f64 {
    found.iter().filter(|f| truth.contains(f)).count() as f64 / truth.len() as f64
}

fn stats(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.5), percentile(&ms, 0.99))
}

/// Runs the memory benchmark and prints its figures.
pub async fn run(model_dir: Option<std::path::PathBuf>) -> Result<()> {
    println!("memory ({FACTS} facts, {DIMS}-dim embeddings, {QUERIES} queries, top {K})");
    let data = synthetic();
    let dir = tempfile::tempdir()?;
    let store = Store::open_sqlite(&dir.path().join("bench.db")).await?;
    let t = Instant::now();
    for (n, chunk) in data.texts.chunks(5000).enumerate() {
        let rows: Vec<NewMemory> = chunk
            .iter()
            .enumerate()
            .map(|(j, text)| {
                let i = n * 5000 + j;
                NewMemory {
                    id: format!("mem_{i:08}"),
                    agent: "bench".into(),
                    user_id: None,
                    text: text.clone(),
                    hash: format!("{i}"),
                    importance: 0.5,
                    source: None,
                    embedding: Some(data.vectors[i].clone()),
                    embed_model: Some("bench:synthetic".into()),
                    times: None,
                    shared: false,
                }
            })
            .collect();
        store.save_memories(&rows).await?;
    }
    println!(
        "  load: {FACTS} facts stored (with full-text index) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let before = rss_anon_kib();
    let t = Instant::now();
    let mut index = VectorIndex::new("bench:synthetic", DIMS);
    index.sync(&store).await?;
    let build_s = t.elapsed().as_secs_f64();
    let index_kib = rss_anon_kib() - before;
    println!(
        "  index (sign bits + 8-bit re-rank): built from the store in {:.2} s, {} vectors, +{:.1} MB anonymous RSS",
        build_s,
        index.len(),
        index_kib as f64 / 1024.0
    );

    // Vector side alone, and its recall against a naive full sort.
    let truth: Vec<Vec<usize>> = data
        .queries
        .iter()
        .map(|(_, q)| naive_top(&data.vectors, q, K))
        .collect();
    let mut vec_ms = Vec::new();
    let mut rec = Vec::new();
    for ((_, q), truth) in data.queries.iter().zip(&truth) {
        let t = Instant::now();
        let top = index.search("bench", q, K);
        vec_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let found: Vec<usize> = top.iter().map(|(rowid, _)| *rowid as usize - 1).collect();
        rec.push(recall(&found, truth));
    }
    let (p50, p99) = stats(vec_ms);
    let exact_recall = rec.iter().sum::<f64>() / rec.len() as f64;
    println!(
        "  vector search alone: p50 {p50:.2} ms, p99 {p99:.2} ms, recall@{K} {exact_recall:.3} against exact (target >= 0.95)"
    );
    drop(index);

    // The alternative: an exact scan over contiguous f32 vectors.
    let flat: Vec<f32> = data.vectors.iter().flatten().copied().collect();
    let mut exact_ms = Vec::new();
    for (q, _) in data.queries.iter().map(|(_, q)| (q, ())).take(50) {
        let t = Instant::now();
        let mut top: Vec<(f32, usize)> = Vec::with_capacity(K + 1);
        for (i, v) in flat.chunks_exact(DIMS).enumerate() {
            let mut acc = [0f32; 8];
            for (x, y) in v.chunks_exact(8).zip(q.chunks_exact(8)) {
                for j in 0..8 {
                    acc[j] += x[j] * y[j];
                }
            }
            let s: f32 = acc.iter().sum();
            if top.len() < K || s > top[top.len() - 1].0 {
                top.push((s, i));
                top.sort_by(|a, b| b.0.total_cmp(&a.0));
                top.truncate(K);
            }
        }
        std::hint::black_box(&top);
        exact_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (ep50, ep99) = stats(exact_ms);
    println!(
        "  alternative, exact f32 scan ({:.0} MB of vectors): p50 {ep50:.2} ms, p99 {ep99:.2} ms, recall@{K} 1.000",
        (flat.len() * 4) as f64 / 1e6
    );
    drop(flat);

    let embedder = Precomputed(data.queries.iter().cloned().collect());
    let memory = Memory::new(store.clone(), Some(Arc::new(embedder)));
    let opts = SearchOptions {
        limit: K,
        ..Default::default()
    };
    memory.search("bench", &data.queries[0].0, &opts).await?; // builds the index
    let mut hybrid_ms = Vec::new();
    for (text, _) in &data.queries {
        let t = Instant::now();
        let hits = memory.search("bench", text, &opts).await?;
        hybrid_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if hits.is_empty() {
            anyhow::bail!("hybrid search found nothing for {text:?}");
        }
    }
    let (hp50, hp99) = stats(hybrid_ms);
    println!(
        "  hybrid search (FTS5 + vectors, score fusion, records fetched): p50 {hp50:.2} ms (target <= 5), p99 {hp99:.2} ms (target <= 20)"
    );

    let mut text_ms = Vec::new();
    for (text, _) in &data.queries {
        let t = Instant::now();
        let terms = cairn_memory::terms::query_terms(text);
        let counts = store.memory_term_counts(&terms, 201).await?;
        let kept: Vec<String> = terms
            .into_iter()
            .zip(counts.matching)
            .filter(|(_, n)| *n <= 200)
            .map(|(t, _)| t)
            .collect();
        store.search_memory_text("bench", None, &kept, 50).await?;
        text_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (tp50, tp99) = stats(text_ms);
    println!(
        "    of which full-text (FTS5, common words pruned): p50 {tp50:.2} ms, p99 {tp99:.2} ms"
    );
    let mut fetch_ms = Vec::new();
    for q in 0..100 {
        let rowids: Vec<i64> = (0..100)
            .map(|i| (q * 997 + i * 7919) % FACTS as i64 + 1)
            .collect();
        let t = Instant::now();
        store.memories_by_rowid(&rowids).await?;
        fetch_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (fp50, _) = stats(fetch_ms);
    println!("    of which fetching 100 candidate records: p50 {fp50:.2} ms");

    sqlite_vec_peer(&data, &truth)?;

    match model_dir {
        Some(dir) => model_throughput(&dir).await?,
        None => println!(
            "  embedding model: not measured (set BENCH_MODEL_DIR to the all-MiniLM-L6-v2 directory; bench/run.sh does)"
        ),
    }
    Ok(())
}

/// sqlite-vec's `vec0` table over the same vectors (its KNN is a full scan).
fn sqlite_vec_peer(data: &Data, truth: &[Vec<usize>]) -> Result<()> {
    #[allow(unsafe_code)]
    // Registers the extension for connections opened after this; the
    // function has the signature SQLite expects of an extension entry.
    unsafe {
        type Init = unsafe extern "C" fn(
            *mut rusqlite::ffi::sqlite3,
            *mut *mut std::os::raw::c_char,
            *const rusqlite::ffi::sqlite3_api_routines,
        ) -> std::os::raw::c_int;
        let init: Init = std::mem::transmute(sqlite_vec::sqlite3_vec_init as *const ());
        rusqlite::ffi::sqlite3_auto_extension(Some(init));
    }
    let dir = tempfile::tempdir()?;
    let conn = rusqlite::Connection::open(dir.path().join("vec.db"))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; CREATE VIRTUAL TABLE v USING vec0(embedding float[{DIMS}]);"
    ))
    .context("sqlite-vec")?;
    let t = Instant::now();
    let tx = conn.unchecked_transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO v (rowid, embedding) VALUES (?, ?)")?;
        for (i, v) in data.vectors.iter().enumerate() {
            insert.execute(rusqlite::params![
                i as i64 + 1,
                cairn_store::vector_to_blob(v)
            ])?;
        }
    }
    tx.commit()?;
    let load_s = t.elapsed().as_secs_f64();
    let mut ms = Vec::new();
    let mut rec = Vec::new();
    let mut query = conn.prepare(&format!(
        "SELECT rowid FROM v WHERE embedding MATCH ? ORDER BY distance LIMIT {K}"
    ))?;
    for ((_, q), truth) in data.queries.iter().zip(truth) {
        let t = Instant::now();
        let found: Vec<usize> = query
            .query_map([cairn_store::vector_to_blob(q)], |r| r.get::<_, i64>(0))?
            .map(|r| r.map(|id| id as usize - 1))
            .collect::<Result<_, _>>()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        rec.push(recall(&found, truth));
    }
    let (p50, p99) = stats(ms);
    println!(
        "  peer sqlite-vec 0.1 (vec0 KNN): loaded in {load_s:.1} s; p50 {p50:.2} ms, p99 {p99:.2} ms, recall@{K} {:.3}",
        rec.iter().sum::<f64>() / rec.len() as f64
    );
    Ok(())
}

/// The real model: sentences per second in batches, and one query's latency.
async fn model_throughput(dir: &std::path::Path) -> Result<()> {
    let model = LocalEmbedder::load(dir)?;
    let t = Instant::now();
    model.warm_up()?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let sentences: Vec<String> = (0..512)
        .map(|i| {
            format!(
                "Note {i}: the customer asked about invoice {} and prefers email follow-ups in the morning.",
                i * 7
            )
        })
        .collect();
    model.embed(&sentences[..32]).await?; // warm
    let t = Instant::now();
    model.embed(&sentences).await?;
    let per_s = sentences.len() as f64 / t.elapsed().as_secs_f64();
    let mut single = Vec::new();
    for i in 0..30 {
        let t = Instant::now();
        model
            .embed(&[format!("what did I say about invoices {i}?")])
            .await?;
        single.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "  all-MiniLM-L6-v2 (candle, CPU): loaded in {load_ms:.0} ms; {per_s:.0} sentences/s batched; one query {:.1} ms (median)",
        median(single)
    );
    Ok(())
}
