use cairn_store::StoreError;
use thiserror::Error;

/// What can go wrong with memory.
#[derive(Debug, Error)]
pub enum MemoryError {
    /// The store failed (or the memory asked for does not exist).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedding model could not be loaded or run.
    #[error("{0}")]
    Model(String),
    /// The request is not acceptable (empty, too long, bad importance).
    #[error("{0}")]
    Invalid(String),
    /// The operation needs embeddings and none are configured.
    #[error(
        "no embedding model is configured: set memory.embedder = \"local\" with memory.model_dir, \
         or memory.embedder = \"openai\" with memory.embed_model (see `cairn doctor`)"
    )]
    NoEmbedder,
    /// An import or export could not proceed.
    #[error("{0}")]
    Io(String),
}
