use std::time::Duration;

use thiserror::Error;

/// What can go wrong calling a model.
#[derive(Debug, Error)]
pub enum LlmError {
    /// No provider could be chosen from config and environment.
    #[error(
        "no model provider configured: set ANTHROPIC_API_KEY (Anthropic), OPENAI_API_KEY (OpenAI), \
         or OPENAI_BASE_URL=http://127.0.0.1:11434/v1 for a local Ollama (llama.cpp: :8080/v1, vLLM: :8000/v1)"
    )]
    NotConfigured,
    /// No provider is configured (the server runs anyway and says why).
    #[error("{0}")]
    Unconfigured(String),
    /// The chosen provider needs a key that is not set.
    #[error("{provider}: no API key: set {var}")]
    MissingKey {
        /// Provider.
        provider: String,
        /// Environment variable to set.
        var: &'static str,
    },
    /// The provider rejected the key (401/403).
    #[error("{provider} rejected the API key (HTTP {status}): {message}; check {var}")]
    Auth {
        /// Provider.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
        /// Variable holding the key.
        var: &'static str,
    },
    /// Rate limited (429); transient.
    #[error("{provider} rate limit (HTTP 429): {message}")]
    RateLimited {
        /// Provider.
        provider: String,
        /// Provider's message.
        message: String,
        /// Wait the provider asked for.
        retry_after: Option<Duration>,
    },
    /// Server-side failure (5xx, overloaded); transient.
    #[error("{provider} server error (HTTP {status}): {message}")]
    Server {
        /// Provider.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
        /// Wait the provider asked for.
        retry_after: Option<Duration>,
    },
    /// The request was refused (other 4xx); retrying will not help.
    #[error("{provider} refused the request (HTTP {status}): {message}")]
    Rejected {
        /// Provider.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// The prompt did not fit the model's context window; compaction, not
    /// a retry, is the remedy.
    #[error("{provider}: the conversation does not fit the model's context window: {message}")]
    ContextOverflow {
        /// Provider.
        provider: String,
        /// Provider's message.
        message: String,
        /// The window the provider named, in tokens.
        limit: Option<u64>,
    },
    /// Could not connect, or the connection broke; transient.
    #[error("{provider}: connection to {url} failed: {message}")]
    Connect {
        /// Provider.
        provider: String,
        /// Endpoint.
        url: String,
        /// What happened.
        message: String,
    },
    /// No answer (or no stream data) in time; transient.
    #[error("{provider}: no response within {seconds} s")]
    Timeout {
        /// Provider.
        provider: String,
        /// Limit that passed.
        seconds: u64,
    },
    /// The router found no provider the call's data may go to.
    #[error("{0}")]
    Residency(String),
    /// The agent spent its daily budget and its calls are stopped.
    #[error("{0}")]
    Budget(String),
    /// The provider answered something that is not its documented format.
    #[error("{provider}: malformed response: {message}")]
    Protocol {
        /// Provider.
        provider: String,
        /// What was wrong.
        message: String,
    },
}

impl LlmError {
    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Server { .. }
                | LlmError::Connect { .. }
                | LlmError::Timeout { .. }
        )
    }

    /// The wait the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after, .. } | LlmError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}
