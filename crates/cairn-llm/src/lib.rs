//! Model providers behind one trait: Anthropic's Messages API and OpenAI's
//! Chat Completions API (which also serves Ollama, llama.cpp, vLLM and other
//! OpenAI-compatible local servers via `OPENAI_BASE_URL`). Both stream over
//! SSE, both carry tool calls and token usage. Retries, pricing and the
//! choice of provider from the environment live here too.

mod anthropic;
mod error;
mod http;
mod openai;
pub mod pricing;
mod retry;
pub mod router;
mod select;
pub mod sse;
pub mod tokens;
mod unconfigured;
pub mod usage_limit;

use async_trait::async_trait;
use cairn_core::{ModelRequest, ModelResponse, StreamEvent};

pub use anthropic::AnthropicProvider;
pub use error::LlmError;
pub use http::client as http_client;
pub use openai::OpenAiProvider;
pub use retry::{RetryPolicy, complete_with_retry};
pub use router::Router;
pub use select::{ProviderChoice, ProviderKind, ProviderSettings, select_provider};
pub use unconfigured::UnconfiguredProvider;

/// Callback receiving streaming events as they arrive.
pub type EventSink<'a> = &'a (dyn Fn(StreamEvent) + Send + Sync);

/// A model provider.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Short name: `anthropic`, `openai`.
    fn name(&self) -> &str;

    /// Model used when a request names none.
    fn default_model(&self) -> &str;

    /// `Err` with what to fix when this provider cannot serve calls.
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }

    /// Its counters in the Prometheus text format (the router's decisions);
    /// empty when it keeps none.
    fn metrics(&self) -> String {
        String::new()
    }

    /// Counts this provider's tokens (its tokenizer's bytes per token).
    fn token_counter(&self) -> tokens::TokenCounter {
        tokens::TokenCounter::new(3.6)
    }

    /// One model call. Streams through `on_event` when `req.stream` is set;
    /// always returns the complete response.
    async fn complete(
        &self,
        req: &ModelRequest,
        on_event: EventSink<'_>,
    ) -> Result<ModelResponse, LlmError>;
}
