//! The complexity classifier: k nearest neighbours over labelled example
//! prompts, in the embedding space of a small in-process model (the memory
//! tier's). Simple work (classification, templated text, short summaries)
//! is sent to one provider, demanding work (multi-step planning, long
//! analysis, code) to another.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Why the classifier could not judge, or could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// Built without examples.
    #[error("the classifier has no examples")]
    NoExamples,
    /// The embedder failed (its own error, boxed: it comes from the memory
    /// tier's model, which this crate does not know).
    #[error("the embedder failed: {0}")]
    Embed(Box<dyn std::error::Error + Send + Sync>),
    /// The embedder answered with fewer vectors than texts.
    #[error("the embedder returned {got} vectors for {asked} texts")]
    ShortAnswer {
        /// Texts sent.
        asked: usize,
        /// Vectors back.
        got: usize,
    },
    /// An examples file could not be read.
    #[error("{path}: {source}")]
    ExamplesUnreadable {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line of an examples file is not an example.
    #[error("{path}:{line}: {source}")]
    BadExample {
        /// The file.
        path: String,
        /// Its line, from 1.
        line: usize,
        /// Why.
        source: serde_json::Error,
    },
}

/// How demanding a prompt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    /// A local model does it well.
    Simple,
    /// It needs the frontier model.
    Complex,
}

/// A labelled example prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// The prompt.
    pub text: String,
    /// Its label.
    pub label: Complexity,
}

/// `[router.classifier]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    /// Provider for simple work.
    pub simple: String,
    /// Provider for complex work.
    pub complex: String,
    /// Neighbours that vote.
    pub k: usize,
    /// Encoder layers of the model the classifier runs (the first ones);
    /// 0 runs the whole model and shares memory's embeddings. One layer
    /// agrees better with the shipped labels (98% against 91%, leave one
    /// out) in a sixth of the time: the form of a request tells simple
    /// from demanding work better than its topic does.
    pub layers: usize,
    /// Labelled prompts written in the config.
    pub examples: Vec<Example>,
    /// More of them, one JSON object (`text`, `label`) per line; relative
    /// to `CAIRN_HOME`.
    pub examples_file: String,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            simple: String::new(),
            complex: String::new(),
            k: 5,
            layers: 1,
            examples: Vec::new(),
            examples_file: String::new(),
        }
    }
}

impl ClassifierConfig {
    /// Whether a classifier is configured.
    pub fn enabled(&self) -> bool {
        !self.simple.is_empty() || !self.complex.is_empty()
    }
}

/// Turns text into a unit vector (the memory tier's model, adapted).
#[async_trait]
pub trait TextEmbedder: Send + Sync {
    /// One vector per text, in order, each of unit length.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ClassifyError>;
}

/// A verdict and how sure it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The label that won.
    pub label: Complexity,
    /// Its share of the neighbours' similarity (0.5–1).
    pub confidence: f32,
}

/// The classifier; its examples are embedded at the first use.
pub struct Classifier {
    embedder: Arc<dyn TextEmbedder>,
    examples: Vec<Example>,
    embedded: tokio::sync::OnceCell<Vec<(Vec<f32>, Complexity)>>,
    k: usize,
}

impl Classifier {
    /// A classifier over `examples` (at least one) with `embedder`.
    pub fn new(
        embedder: Arc<dyn TextEmbedder>,
        examples: Vec<Example>,
        k: usize,
    ) -> Result<Classifier, ClassifyError> {
        if examples.is_empty() {
            return Err(ClassifyError::NoExamples);
        }
        Ok(Classifier {
            embedder,
            examples,
            embedded: tokio::sync::OnceCell::new(),
            k: k.max(1),
        })
    }

    async fn examples(&self) -> Result<&[(Vec<f32>, Complexity)], ClassifyError> {
        let v = self
            .embedded
            .get_or_try_init(|| async {
                let texts: Vec<String> = self.examples.iter().map(|e| e.text.clone()).collect();
                let vectors = self.embedder.embed(&texts).await?;
                if vectors.len() != texts.len() {
                    return Err(ClassifyError::ShortAnswer {
                        asked: texts.len(),
                        got: vectors.len(),
                    });
                }
                Ok(vectors
                    .into_iter()
                    .zip(self.examples.iter().map(|e| e.label))
                    .collect())
            })
            .await?;
        Ok(v)
    }

    /// The label of `text`. A message classified again (every step of a
    /// tool chain) costs a vote, not an embedding: the embedder the CLI
    /// wires in caches recent texts for memory and classifier alike.
    pub async fn classify(&self, text: &str) -> Result<Verdict, ClassifyError> {
        let examples = self.examples().await?;
        let v = self
            .embedder
            .embed(&[text.to_string()])
            .await?
            .pop()
            .ok_or(ClassifyError::ShortAnswer { asked: 1, got: 0 })?;
        Ok(vote(examples, self.k, &v, None))
    }

    /// Leave-one-out over the examples: each one's label as the others
    /// vote, in order.
    pub async fn leave_one_out(&self) -> Result<Vec<Complexity>, ClassifyError> {
        let examples = self.examples().await?;
        Ok(examples
            .iter()
            .enumerate()
            .map(|(i, (v, _))| vote(examples, self.k, v, Some(i)).label)
            .collect())
    }
}

/// (agreement with `labels`, share judged simple) of `predicted`.
pub fn agreement(labels: &[Complexity], predicted: &[Complexity]) -> (f64, f64) {
    let n = predicted.len().max(1) as f64;
    let agree = labels.iter().zip(predicted).filter(|(a, b)| a == b).count() as f64;
    let simple = predicted
        .iter()
        .filter(|p| **p == Complexity::Simple)
        .count() as f64;
    (agree / n, simple / n)
}

/// The `k` nearest examples' vote for `v`, leaving example `skip` out.
fn vote(examples: &[(Vec<f32>, Complexity)], k: usize, v: &[f32], skip: Option<usize>) -> Verdict {
    let mut scored: Vec<(f32, Complexity)> = examples
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(_, (e, l))| (dot(v, e), *l))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut simple, mut complex) = (0.0f32, 0.0f32);
    for (s, l) in scored.into_iter().take(k) {
        // Similarity-weighted, never negative.
        let w = s.max(0.0) + 1e-6;
        match l {
            Complexity::Simple => simple += w,
            Complexity::Complex => complex += w,
        }
    }
    let total = simple + complex;
    if simple > complex {
        Verdict {
            label: Complexity::Simple,
            confidence: simple / total,
        }
    } else {
        Verdict {
            label: Complexity::Complex,
            confidence: complex / total,
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Reads examples from a JSON-lines file; errors name the line.
pub fn read_examples(path: &std::path::Path) -> Result<Vec<Example>, ClassifyError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ClassifyError::ExamplesUnreadable {
            path: path.display().to_string(),
            source,
        })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<Example>(l).map_err(|source| ClassifyError::BadExample {
                path: path.display().to_string(),
                line: i + 1,
                source,
            })
        })
        .collect()
}
