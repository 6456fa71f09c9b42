//! Anthropic Messages API (`POST /v1/messages`), streaming and not.

use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{
    ContentBlock, Message, ModelRequest, ModelResponse, Role, StopReason, StreamEvent, Usage,
};
use serde_json::{Value, json};

use crate::http::{Endpoint, SseReader, client, parse_tool_args};
use crate::{EventSink, LlmError, Provider};

const API_VERSION: &str = "2023-06-01";

/// Talks to Anthropic (or anything speaking its Messages API).
pub struct AnthropicProvider {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    default_model: String,
    endpoint: Endpoint,
}

impl AnthropicProvider {
    /// `base_url` without the `/v1/messages` suffix, e.g. `https://api.anthropic.com`.
    pub fn new(base_url: &str, api_key: &str, default_model: &str, timeout: Duration) -> Self {
        AnthropicProvider {
            http: client(),
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            default_model: default_model.to_string(),
            endpoint: Endpoint {
                provider: "anthropic".into(),
                key_var: "ANTHROPIC_API_KEY",
                timeout,
            },
        }
    }

    fn body(&self, req: &ModelRequest) -> Value {
        let model = if req.model.is_empty() {
            &self.default_model
        } else {
            &req.model
        };
        let mut body = json!({
            "model": model,
            "max_tokens": req.max_tokens,
            "messages": merge_same_role(req.messages.iter().map(wire_message)),
        });
        if !req.system.is_empty() {
            body["system"] = json!(req.system);
        }
        if !req.tools.is_empty() {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
                .collect();
        }
        if req.stream {
            body["stream"] = json!(true);
        }
        body
    }

    async fn read_stream(
        &self,
        mut sse: SseReader,
        on_event: EventSink<'_>,
    ) -> Result<ModelResponse, LlmError> {
        let mut blocks: Vec<PartialBlock> = Vec::new();
        let mut usage = Usage::default();
        let mut stop = StopReason::EndTurn;
        let mut model = String::new();
        while let Some(ev) = sse.next().await? {
            let data: Value = serde_json::from_str(&ev.data).map_err(|e| {
                self.endpoint
                    .protocol(format!("event {:?} is not JSON: {e}", ev.event))
            })?;
            let kind = data["type"].as_str().unwrap_or(ev.event.as_str());
            match kind {
                "message_start" => {
                    model = data["message"]["model"].as_str().unwrap_or("").to_string();
                    usage.input_tokens = data["message"]["usage"]["input_tokens"]
                        .as_u64()
                        .unwrap_or(0);
                    usage.output_tokens = data["message"]["usage"]["output_tokens"]
                        .as_u64()
                        .unwrap_or(0);
                }
                "content_block_start" => {
                    let index = self.index(&data)?;
                    let cb = &data["content_block"];
                    let block = match cb["type"].as_str() {
                        Some("tool_use") => {
                            let id = cb["id"].as_str().unwrap_or("").to_string();
                            let name = cb["name"].as_str().unwrap_or("").to_string();
                            on_event(StreamEvent::ToolUseStart {
                                id: id.clone(),
                                name: name.clone(),
                            });
                            PartialBlock::Tool {
                                id,
                                name,
                                json: String::new(),
                            }
                        }
                        Some("text") => {
                            PartialBlock::Text(cb["text"].as_str().unwrap_or("").to_string())
                        }
                        // Thinking and other block kinds are not kept.
                        _ => PartialBlock::Ignored,
                    };
                    if index != blocks.len() {
                        return Err(self.endpoint.protocol(format!(
                            "content block {index} started out of order (expected {})",
                            blocks.len()
                        )));
                    }
                    blocks.push(block);
                }
                "content_block_delta" => {
                    let index = self.index(&data)?;
                    let block = blocks.get_mut(index).ok_or_else(|| {
                        self.endpoint
                            .protocol(format!("delta for unknown content block {index}"))
                    })?;
                    let delta = &data["delta"];
                    match (block, delta["type"].as_str()) {
                        (PartialBlock::Text(text), Some("text_delta")) => {
                            let piece = delta["text"].as_str().unwrap_or("");
                            text.push_str(piece);
                            on_event(StreamEvent::TextDelta {
                                text: piece.to_string(),
                            });
                        }
                        (PartialBlock::Tool { json, .. }, Some("input_json_delta")) => {
                            json.push_str(delta["partial_json"].as_str().unwrap_or(""));
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    if let Some(r) = data["delta"]["stop_reason"].as_str() {
                        stop = stop_reason(r);
                    }
                    if let Some(n) = data["usage"]["output_tokens"].as_u64() {
                        usage.output_tokens = n;
                    }
                    if let Some(n) = data["usage"]["input_tokens"].as_u64() {
                        usage.input_tokens = n;
                    }
                }
                "message_stop" => {
                    let content = blocks
                        .into_iter()
                        .filter_map(PartialBlock::finish)
                        .collect();
                    return Ok(ModelResponse {
                        content,
                        stop_reason: stop,
                        usage,
                        model,
                        route: None,
                    });
                }
                "error" => return Err(self.stream_error(&data)),
                _ => {} // ping, content_block_stop, future event types
            }
        }
        Err(sse.cut_off())
    }

    fn index(&self, data: &Value) -> Result<usize, LlmError> {
        data["index"].as_u64().map(|i| i as usize).ok_or_else(|| {
            self.endpoint
                .protocol("content block event without an index")
        })
    }

    /// An `error` event mid-stream, e.g. `overloaded_error`.
    fn stream_error(&self, data: &Value) -> LlmError {
        let kind = data["error"]["type"].as_str().unwrap_or("error");
        let message = data["error"]["message"]
            .as_str()
            .unwrap_or(kind)
            .to_string();
        let provider = self.endpoint.provider.clone();
        match kind {
            "overloaded_error" | "api_error" => LlmError::Server {
                provider,
                status: 529,
                message,
                retry_after: None,
            },
            "rate_limit_error" => LlmError::RateLimited {
                provider,
                message,
                retry_after: None,
            },
            _ => LlmError::Protocol {
                provider,
                message: format!("{kind}: {message}"),
            },
        }
    }
}

enum PartialBlock {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Ignored,
}

impl PartialBlock {
    fn finish(self) -> Option<ContentBlock> {
        match self {
            PartialBlock::Text(text) if !text.is_empty() => Some(ContentBlock::Text { text }),
            PartialBlock::Tool { id, name, json } => Some(ContentBlock::ToolUse {
                id,
                name,
                input: parse_tool_args(&json),
            }),
            _ => None,
        }
    }
}

fn wire_message(m: &Message) -> Value {
    let content: Vec<Value> = m
        .content
        .iter()
        .map(|b| match b {
            ContentBlock::Text { text } => json!({"type": "text", "text": text}),
            ContentBlock::ToolUse { id, name, input } => {
                // The API wants an object; arguments the model garbled are
                // kept visible rather than dropped.
                let input = if input.is_object() { input.clone() } else { json!({"_invalid_arguments": input}) };
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            ContentBlock::ToolResult { tool_use_id, content, is_error } => json!({
                "type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error
            }),
        })
        .collect();
    json!({"role": match m.role { Role::User => "user", Role::Assistant => "assistant" }, "content": content})
}

/// The API wants user and assistant turns to alternate; a turn cancelled
/// before the model answered leaves two user messages in a row, so adjacent
/// messages of one role are joined.
fn merge_same_role(messages: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for m in messages {
        match out.last_mut() {
            Some(prev) if prev["role"] == m["role"] => {
                if let (Some(a), Some(b)) =
                    (prev["content"].as_array_mut(), m["content"].as_array())
                {
                    a.extend(b.iter().cloned());
                }
            }
            _ => out.push(m),
        }
    }
    out
}

fn stop_reason(s: &str) -> StopReason {
    match s {
        "end_turn" | "stop_sequence" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_string()),
    }
}

fn parse_full(endpoint: &Endpoint, v: &Value) -> Result<ModelResponse, LlmError> {
    let items = v["content"]
        .as_array()
        .ok_or_else(|| endpoint.protocol("response has no content array"))?;
    let mut content = Vec::new();
    for item in items {
        match item["type"].as_str() {
            Some("text") => content.push(ContentBlock::Text {
                text: item["text"].as_str().unwrap_or("").to_string(),
            }),
            Some("tool_use") => content.push(ContentBlock::ToolUse {
                id: item["id"].as_str().unwrap_or("").to_string(),
                name: item["name"].as_str().unwrap_or("").to_string(),
                input: match &item["input"] {
                    Value::Object(_) => item["input"].clone(),
                    Value::String(s) => parse_tool_args(s),
                    _ => json!({}),
                },
            }),
            _ => {}
        }
    }
    Ok(ModelResponse {
        content,
        stop_reason: stop_reason(v["stop_reason"].as_str().unwrap_or("end_turn")),
        usage: Usage {
            input_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
        },
        model: v["model"].as_str().unwrap_or("").to_string(),
        route: None,
    })
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn default_model(&self) -> &str {
        &self.default_model
    }

    fn token_counter(&self) -> crate::tokens::TokenCounter {
        // Claude's tokenizer yields fewer bytes per token than OpenAI's o200k.
        crate::tokens::TokenCounter::new(3.3)
    }

    async fn complete(
        &self,
        req: &ModelRequest,
        on_event: EventSink<'_>,
    ) -> Result<ModelResponse, LlmError> {
        let url = format!("{}/v1/messages", self.base_url);
        let builder = self
            .http
            .post(&url)
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", API_VERSION)
            .json(&self.body(req));
        let resp = self.endpoint.send(builder, &url, req.stream).await?;
        if req.stream {
            return self
                .read_stream(SseReader::new(resp, &self.endpoint, &url), on_event)
                .await;
        }
        let v = self.endpoint.json_body(resp, &url).await?;
        let out = parse_full(&self.endpoint, &v)?;
        for b in &out.content {
            if let ContentBlock::Text { text } = b {
                on_event(StreamEvent::TextDelta { text: text.clone() });
            }
        }
        Ok(out)
    }
}
