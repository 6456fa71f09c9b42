//! An embedder that remembers the vectors of recent texts, so one message
//! is embedded once for everyone who needs it in a turn (memory recall,
//! then the router's complexity classifier).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::Embedder;
use crate::MemoryError;

/// Texts whose vectors are kept.
const KEPT: usize = 256;
/// Longer texts are not kept (facts being saved, documents).
const LONGEST: usize = 4096;

/// Wraps an embedder with a small cache of recent texts.
pub struct CachedEmbedder {
    inner: Arc<dyn Embedder>,
    recent: Mutex<VecDeque<(String, Vec<f32>)>>,
}

impl CachedEmbedder {
    /// `inner`, remembered.
    pub fn new(inner: Arc<dyn Embedder>) -> CachedEmbedder {
        CachedEmbedder {
            inner,
            recent: Mutex::new(VecDeque::new()),
        }
    }

    fn seen(&self, text: &str) -> Option<Vec<f32>> {
        let recent = self.recent.lock().ok()?;
        recent
            .iter()
            .find(|(t, _)| t == text)
            .map(|(_, v)| v.clone())
    }
}

#[async_trait]
impl Embedder for CachedEmbedder {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dims(&self) -> usize {
        self.inner.dims()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let mut out: Vec<Option<Vec<f32>>> = texts.iter().map(|t| self.seen(t)).collect();
        let missing: Vec<String> = texts
            .iter()
            .zip(&out)
            .filter(|(_, v)| v.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        if !missing.is_empty() {
            let mut fresh = self.inner.embed(&missing).await?.into_iter();
            for (slot, text) in out.iter_mut().zip(texts) {
                if slot.is_none() {
                    let v = fresh.next().ok_or_else(|| {
                        MemoryError::Model("the model returned too few vectors".into())
                    })?;
                    if text.len() <= LONGEST
                        && let Ok(mut r) = self.recent.lock()
                    {
                        if r.len() >= KEPT {
                            r.pop_front();
                        }
                        r.push_back((text.clone(), v.clone()));
                    }
                    *slot = Some(v);
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts the texts it is asked to embed.
    struct Counting(AtomicUsize);

    #[async_trait]
    impl Embedder for Counting {
        fn model_id(&self) -> &str {
            "counting"
        }
        fn dims(&self) -> usize {
            1
        }
        async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    #[tokio::test]
    async fn a_text_is_embedded_once_and_order_is_kept() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let cached = CachedEmbedder::new(inner.clone());
        let a = "how do I reach HR?".to_string();
        assert_eq!(
            cached.embed(std::slice::from_ref(&a)).await.unwrap(),
            vec![vec![18.0]]
        );
        let both = cached.embed(&["xy".to_string(), a.clone()]).await.unwrap();
        assert_eq!(both, vec![vec![2.0], vec![18.0]]);
        assert_eq!(
            inner.0.load(Ordering::SeqCst),
            2,
            "the repeated text was not embedded again"
        );
    }
}
