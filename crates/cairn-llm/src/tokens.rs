//! Token counting for working memory: how big a request is before it is
//! sent, and how big a model's context window is.
//!
//! Counting is an estimate from bytes, with a bytes-per-token ratio per
//! provider (their tokenizers differ), which the runtime then calibrates
//! against the exact `input_tokens` every response reports. That is exact
//! where it matters (the last request) without a tokenizer per model in the
//! binary or a counting round trip per step.

use cairn_core::{ContentBlock, Message, ModelRequest, ToolSpec};

/// Tokens a message costs beyond its text (role, separators).
const MESSAGE_OVERHEAD: u64 = 4;
/// Tokens a content block costs beyond its text.
const BLOCK_OVERHEAD: u64 = 3;

/// Context windows by model-name prefix (longest prefix wins), as the
/// providers publish them. For GPT-5 it is the input limit.
const WINDOWS: &[(&str, u32)] = &[
    ("claude-", 200_000),
    ("gpt-5", 272_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-3.5-turbo", 16_385),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4-mini", 200_000),
];

/// The window assumed for a model not in the table — typically a local
/// model, where Ollama's and llama.cpp's defaults are small. Configure
/// `agents.<name>.context_window` to use more of a bigger one.
pub const UNKNOWN_MODEL_WINDOW: u32 = 8_192;

/// The context window of `model`, in tokens.
pub fn context_window(model: &str) -> u32 {
    WINDOWS
        .iter()
        .filter(|(prefix, _)| model.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|&(_, w)| w)
        .unwrap_or(UNKNOWN_MODEL_WINDOW)
}

/// Counts tokens of requests for one provider's tokenizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenCounter {
    /// Average bytes of UTF-8 text per token.
    pub bytes_per_token: f64,
}

impl TokenCounter {
    /// A counter with this ratio (clamped to a sane range).
    pub fn new(bytes_per_token: f64) -> TokenCounter {
        TokenCounter {
            bytes_per_token: if bytes_per_token.is_finite() {
                bytes_per_token.clamp(1.0, 8.0)
            } else {
                4.0
            },
        }
    }

    fn bytes(self, n: usize) -> u64 {
        (n as f64 / self.bytes_per_token).ceil() as u64
    }

    /// Tokens of one message.
    pub fn message(&self, m: &Message) -> u64 {
        MESSAGE_OVERHEAD
            + m.content
                .iter()
                .map(|b| {
                    BLOCK_OVERHEAD
                        + match b {
                            ContentBlock::Text { text } => self.bytes(text.len()),
                            ContentBlock::ToolUse { id, name, input } => {
                                self.bytes(id.len() + name.len() + json_len(input))
                            }
                            ContentBlock::ToolResult {
                                tool_use_id,
                                content,
                                ..
                            } => self.bytes(tool_use_id.len() + content.len()),
                        }
                })
                .sum::<u64>()
    }

    /// Tokens of the tool definitions.
    pub fn tools(&self, tools: &[ToolSpec]) -> u64 {
        tools
            .iter()
            .map(|t| {
                BLOCK_OVERHEAD
                    + self.bytes(t.name.len() + t.description.len() + json_len(&t.input_schema))
            })
            .sum()
    }

    /// Tokens of everything in a request but its messages.
    pub fn fixed(&self, system: &str, tools: &[ToolSpec]) -> u64 {
        MESSAGE_OVERHEAD + self.bytes(system.len()) + self.tools(tools)
    }

    /// Tokens of a whole request's prompt.
    pub fn request(&self, req: &ModelRequest) -> u64 {
        self.fixed(&req.system, &req.tools)
            + req.messages.iter().map(|m| self.message(m)).sum::<u64>()
    }
}

fn json_len(v: &serde_json::Value) -> usize {
    serde_json::to_string(v).map(|s| s.len()).unwrap_or(0)
}

/// Whether a provider's error body (and HTTP status) says the prompt did
/// not fit the model's context window, and the window it names if any.
/// Recognises Anthropic ("prompt is too long: N tokens > M maximum"),
/// OpenAI (`context_length_exceeded`), vLLM ("maximum context length is M
/// tokens") and llama.cpp (`exceed_context_size_error` with `n_ctx`).
pub fn context_overflow(status: u16, body: &str) -> Option<Option<u64>> {
    if status != 400 && status != 413 {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    const SIGNS: &[&str] = &[
        "prompt is too long",
        "context_length_exceeded",
        "maximum context length",
        "exceed_context_size_error",
        "exceeds the available context size",
        "context window",
        "input is too long",
    ];
    if !SIGNS.iter().any(|s| lower.contains(s)) {
        return None;
    }
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let n_ctx = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/n_ctx").or_else(|| v.get("n_ctx")))
        .and_then(serde_json::Value::as_u64);
    let limit = n_ctx
        .or_else(|| number_after(&lower, "maximum context length is "))
        .or_else(|| number_after(&lower, "tokens > "))
        .or_else(|| number_after(&lower, "available context size ("));
    Some(limit)
}

fn number_after(text: &str, marker: &str) -> Option<u64> {
    let start = text.find(marker)? + marker.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_by_model_prefix() {
        assert_eq!(context_window("claude-sonnet-4-5"), 200_000);
        assert_eq!(context_window("gpt-4.1-mini"), 1_047_576);
        assert_eq!(context_window("gpt-4o-mini"), 128_000);
        assert_eq!(context_window("llama3.2:3b"), UNKNOWN_MODEL_WINDOW);
    }

    #[test]
    fn overflow_errors_of_each_provider_are_recognised() {
        let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208566 tokens > 200000 maximum"}}"#;
        assert_eq!(context_overflow(400, anthropic), Some(Some(200_000)));
        let openai = r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        assert_eq!(context_overflow(400, openai), Some(Some(128_000)));
        let vllm = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#;
        assert_eq!(context_overflow(400, vllm), Some(Some(4096)));
        let llama_cpp = r#"{"error":{"code":400,"message":"request (4476 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":4476,"n_ctx":4096}}"#;
        assert_eq!(context_overflow(400, llama_cpp), Some(Some(4096)));
        // Other refusals are not overflows.
        let other = r#"{"error":{"message":"max_tokens: 100000 > 64000, which is the maximum allowed","type":"invalid_request_error"}}"#;
        assert_eq!(context_overflow(400, other), None);
        assert_eq!(context_overflow(500, anthropic), None);
    }

    #[test]
    fn counting_grows_with_text_and_is_per_provider() {
        let short = Message::user_text("hello");
        let long = Message::user_text("hello ".repeat(1000));
        let c = TokenCounter::new(4.0);
        assert!(c.message(&long) > 1400 && c.message(&long) < 1600);
        assert!(c.message(&short) < 20);
        assert!(TokenCounter::new(3.0).message(&long) > c.message(&long));
    }
}
