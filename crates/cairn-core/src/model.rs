//! Provider-neutral model requests, responses and streaming events.

use serde::{Deserialize, Serialize};

use crate::{ContentBlock, Message, ToolSpec};

/// One call to a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRequest {
    /// Model name as the provider knows it.
    pub model: String,
    /// System prompt.
    pub system: String,
    /// Conversation so far.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Output token limit.
    pub max_tokens: u32,
    /// Whether to stream the response.
    pub stream: bool,
    /// What the router needs to know about the caller.
    #[serde(default)]
    pub hints: crate::RouteHints,
}

/// Token counts of one call.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Finished its answer.
    EndTurn,
    /// Wants tool results.
    ToolUse,
    /// Hit the output token limit.
    MaxTokens,
    /// Anything else the provider said.
    Other(String),
}

/// A complete model response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResponse {
    /// Text and tool calls, in order.
    pub content: Vec<ContentBlock>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Tokens used.
    pub usage: Usage,
    /// Model that answered (as reported by the provider).
    pub model: String,
    /// Where the router sent the call and why (absent without a router).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Box<crate::RouteDecision>>,
}

/// Incremental output while a response streams in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// A piece of answer text.
    TextDelta {
        /// The piece.
        text: String,
    },
    /// The model started a tool call.
    ToolUseStart {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
}
