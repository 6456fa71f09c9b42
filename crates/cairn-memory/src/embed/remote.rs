//! Embeddings from an OpenAI-compatible `POST {base}/embeddings` endpoint
//! (OpenAI, Ollama, llama.cpp, vLLM, …).

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::{Embedder, normalize};
use crate::MemoryError;

/// Texts per request.
const BATCH: usize = 256;

/// A remote embedding model.
pub struct RemoteEmbedder {
    http: reqwest::Client,
    url: String,
    key: Option<String>,
    model: String,
    model_id: String,
    /// Learned from the first answer (0 until then).
    dims: std::sync::atomic::AtomicUsize,
}

#[derive(Deserialize)]
struct EmbeddingList {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

impl RemoteEmbedder {
    /// An embedder for `model` at `base_url` (ending in `/v1`); nothing is
    /// sent until the first embedding.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        key: Option<String>,
        model: &str,
    ) -> RemoteEmbedder {
        RemoteEmbedder {
            http,
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            key,
            model: model.to_string(),
            model_id: format!("remote:{model}"),
            dims: Default::default(),
        }
    }

    /// Connects to `base_url` (ending in `/v1`) and asks once for an
    /// embedding, to learn the vector length and to fail early with a clear
    /// message when the endpoint or model is wrong.
    pub async fn connect(
        http: reqwest::Client,
        base_url: &str,
        key: Option<String>,
        model: &str,
    ) -> Result<RemoteEmbedder, MemoryError> {
        let e = RemoteEmbedder::new(http, base_url, key, model);
        let probe = e.embed(&["dimension probe".to_string()]).await?;
        if probe.first().is_none_or(Vec::is_empty) {
            return Err(MemoryError::Model(format!(
                "{} returned an empty embedding for model {model:?}",
                e.url
            )));
        }
        Ok(e)
    }

    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let failed = |why: String| {
            MemoryError::Model(format!(
                "embedding request to {} (model {:?}) failed: {why}",
                self.url, self.model
            ))
        };
        let mut req = self
            .http
            .post(&self.url)
            .timeout(Duration::from_secs(60))
            .json(&json!({"model": self.model, "input": texts}));
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| failed(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(failed(format!("HTTP {status}: {body}")));
        }
        let mut list: EmbeddingList = resp
            .json()
            .await
            .map_err(|e| failed(format!("unexpected response: {e}")))?;
        if list.data.len() != texts.len() {
            return Err(failed(format!(
                "asked for {} embeddings, got {}",
                texts.len(),
                list.data.len()
            )));
        }
        list.data.sort_by_key(|d| d.index);
        Ok(list
            .data
            .into_iter()
            .map(|mut d| {
                normalize(&mut d.embedding);
                d.embedding
            })
            .collect())
    }
}

#[async_trait]
impl Embedder for RemoteEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dims(&self) -> usize {
        self.dims.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let got = self.request(chunk).await?;
            let want = match self.dims() {
                0 => got.first().map(Vec::len).unwrap_or(0),
                n => n,
            };
            self.dims.store(want, std::sync::atomic::Ordering::Relaxed);
            if let Some(bad) = got.iter().find(|v| v.len() != want) {
                return Err(MemoryError::Model(format!(
                    "{} returned a {}-dimensional embedding, expected {}",
                    self.url,
                    bad.len(),
                    want
                )));
            }
            out.extend(got);
        }
        Ok(out)
    }
}
