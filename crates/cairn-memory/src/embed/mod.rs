//! Turning text into vectors: in process with a BERT-family model on the
//! CPU (candle), or through any OpenAI-compatible `/v1/embeddings` endpoint.

mod cached;
mod local;
mod mpnet;
mod remote;

use async_trait::async_trait;

pub use cached::CachedEmbedder;
pub use local::LocalEmbedder;
pub use remote::RemoteEmbedder;

use crate::MemoryError;

/// Makes embeddings. Vectors are L2-normalised, so a dot product is the
/// cosine similarity.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Identifies the model; vectors of different models are never compared.
    fn model_id(&self) -> &str;

    /// Length of every vector.
    fn dims(&self) -> usize;

    /// Embeds each text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError>;
}

/// Scales `v` to unit length (leaves a zero vector alone).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
