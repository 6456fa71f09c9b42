//! OpenAI Chat Completions (`POST {base}/chat/completions`), streaming and
//! not. Also the client for OpenAI-compatible local servers (Ollama,
//! llama.cpp, vLLM): for those the key is optional and, when no model is
//! configured, the first model the server lists is used.

use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{
    ContentBlock, Message, ModelRequest, ModelResponse, Role, StopReason, StreamEvent, Usage,
};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::http::{Endpoint, SseReader, client, parse_tool_args};
use crate::{EventSink, LlmError, Provider};

/// Talks to OpenAI or any OpenAI-compatible server.
pub struct OpenAiProvider {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    configured_model: String,
    discovered_model: OnceCell<String>,
    endpoint: Endpoint,
}

impl OpenAiProvider {
    /// `base_url` including `/v1`, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:11434/v1`. An empty `default_model` means "ask the
    /// server".
    pub fn new(
        base_url: &str,
        api_key: Option<&str>,
        default_model: &str,
        timeout: Duration,
    ) -> Self {
        OpenAiProvider {
            http: client(),
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.filter(|k| !k.is_empty()).map(str::to_string),
            configured_model: default_model.to_string(),
            discovered_model: OnceCell::new(),
            endpoint: Endpoint {
                provider: "openai".into(),
                key_var: "OPENAI_API_KEY",
                timeout,
            },
        }
    }

    /// OpenAI's own API renamed `max_tokens`; compatible servers know the old name.
    fn is_openai_cloud(&self) -> bool {
        self.base_url.contains("api.openai.com")
    }

    fn authed(&self, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(k) => b.bearer_auth(k),
            None => b,
        }
    }

    async fn model_for(&self, req: &ModelRequest) -> Result<String, LlmError> {
        if !req.model.is_empty() {
            return Ok(req.model.clone());
        }
        if !self.configured_model.is_empty() {
            return Ok(self.configured_model.clone());
        }
        self.discovered_model
            .get_or_try_init(|| async {
                let url = format!("{}/models", self.base_url);
                let resp = self.endpoint.send(self.authed(self.http.get(&url)), &url, false).await?;
                let v: Value = resp.json().await.map_err(|e| self.endpoint.protocol(format!("{url}: {e}")))?;
                v["data"][0]["id"].as_str().map(str::to_string).ok_or_else(|| {
                    self.endpoint.protocol(format!(
                        "{url} lists no models; pull one (e.g. `ollama pull llama3.2`) or set llm.model in cairn.toml"
                    ))
                })
            })
            .await
            .cloned()
    }

    fn body(&self, req: &ModelRequest, model: &str) -> Value {
        let mut messages = Vec::new();
        if !req.system.is_empty() {
            messages.push(json!({"role": "system", "content": req.system}));
        }
        for m in &req.messages {
            wire_messages(m, &mut messages);
        }
        let mut body = json!({"model": model, "messages": messages});
        let limit_key = if self.is_openai_cloud() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[limit_key] = json!(req.max_tokens);
        if !req.tools.is_empty() {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.input_schema}})
                })
                .collect();
        }
        if req.stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    async fn read_stream(
        &self,
        mut sse: SseReader,
        on_event: EventSink<'_>,
    ) -> Result<ModelResponse, LlmError> {
        let mut text = String::new();
        let mut calls: Vec<(String, String, String)> = Vec::new();
        let mut usage = Usage::default();
        let mut finish: Option<String> = None;
        let mut model = String::new();
        let mut done = false;
        while let Some(ev) = sse.next().await? {
            if ev.data.trim() == "[DONE]" {
                done = true;
                break;
            }
            let chunk: Value = serde_json::from_str(&ev.data)
                .map_err(|e| self.endpoint.protocol(format!("chunk is not JSON: {e}")))?;
            if let Some(err) = chunk.get("error") {
                let message = err["message"]
                    .as_str()
                    .unwrap_or("stream error")
                    .to_string();
                return Err(LlmError::Server {
                    provider: "openai".into(),
                    status: 500,
                    message,
                    retry_after: None,
                });
            }
            if let Some(m) = chunk["model"].as_str() {
                model = m.to_string();
            }
            if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                usage = parse_usage(u);
            }
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            let delta = &choice["delta"];
            if let Some(piece) = delta["content"].as_str().filter(|p| !p.is_empty()) {
                text.push_str(piece);
                on_event(StreamEvent::TextDelta {
                    text: piece.to_string(),
                });
            }
            for tc in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = tc["index"].as_u64().unwrap_or(calls.len() as u64) as usize;
                if index > calls.len() {
                    return Err(self
                        .endpoint
                        .protocol(format!("tool call index {index} skips ahead")));
                }
                if index == calls.len() {
                    calls.push((String::new(), String::new(), String::new()));
                }
                let call = &mut calls[index];
                if let Some(id) = tc["id"].as_str() {
                    call.0 = id.to_string();
                }
                if let Some(name) = tc["function"]["name"].as_str() {
                    call.1.push_str(name);
                    on_event(StreamEvent::ToolUseStart {
                        id: call.0.clone(),
                        name: call.1.clone(),
                    });
                }
                if let Some(args) = tc["function"]["arguments"].as_str() {
                    call.2.push_str(args);
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
        // Some compatible servers close without `[DONE]`; a finish reason is
        // enough to know the answer is whole.
        let Some(finish) = finish else {
            return Err(if done {
                self.endpoint
                    .protocol("stream finished without a finish_reason")
            } else {
                sse.cut_off()
            });
        };
        let mut content = Vec::new();
        if !text.is_empty() {
            content.push(ContentBlock::Text { text });
        }
        for (id, name, args) in calls {
            content.push(ContentBlock::ToolUse {
                id,
                name,
                input: parse_tool_args(&args),
            });
        }
        Ok(ModelResponse {
            content,
            stop_reason: stop_reason(&finish),
            usage,
            model,
            route: None,
        })
    }
}

fn parse_usage(u: &Value) -> Usage {
    Usage {
        input_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
    }
}

fn stop_reason(s: &str) -> StopReason {
    match s {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_string()),
    }
}

/// One neutral message becomes one or more chat messages: tool results are
/// separate `role: tool` messages in this API.
fn wire_messages(m: &Message, out: &mut Vec<Value>) {
    match m.role {
        Role::Assistant => {
            let text = m.text();
            let calls: Vec<Value> = m
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolUse { id, name, input } => {
                        let arguments = match input {
                            Value::String(raw) => raw.clone(),
                            other => other.to_string(),
                        };
                        Some(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
                    }
                    _ => None,
                })
                .collect();
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                msg["tool_calls"] = json!(calls);
            }
            out.push(msg);
        }
        Role::User => {
            let mut text = String::new();
            for b in &m.content {
                match b {
                    ContentBlock::ToolResult {
                        tool_use_id,
                        content,
                        ..
                    } => {
                        out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}));
                    }
                    ContentBlock::Text { text: t } => text.push_str(t),
                    ContentBlock::ToolUse { .. } => {}
                }
            }
            if !text.is_empty() {
                out.push(json!({"role": "user", "content": text}));
            }
        }
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
    }

    fn default_model(&self) -> &str {
        &self.configured_model
    }

    fn token_counter(&self) -> crate::tokens::TokenCounter {
        // o200k (and the Llama/Qwen tokenizers of local servers) average about 4 bytes of English per token; a little less keeps the estimate on the safe side.
        crate::tokens::TokenCounter::new(3.8)
    }

    async fn complete(
        &self,
        req: &ModelRequest,
        on_event: EventSink<'_>,
    ) -> Result<ModelResponse, LlmError> {
        let model = self.model_for(req).await?;
        let url = format!("{}/chat/completions", self.base_url);
        let builder = self
            .authed(self.http.post(&url))
            .json(&self.body(req, &model));
        let resp = self.endpoint.send(builder, &url, req.stream).await?;
        if req.stream {
            return self
                .read_stream(SseReader::new(resp, &self.endpoint, &url), on_event)
                .await;
        }
        let v = self.endpoint.json_body(resp, &url).await?;
        let choice = v["choices"]
            .get(0)
            .ok_or_else(|| self.endpoint.protocol("response has no choices"))?;
        let msg = &choice["message"];
        let mut content = Vec::new();
        if let Some(t) = msg["content"].as_str().filter(|t| !t.is_empty()) {
            on_event(StreamEvent::TextDelta {
                text: t.to_string(),
            });
            content.push(ContentBlock::Text {
                text: t.to_string(),
            });
        }
        for tc in msg["tool_calls"].as_array().into_iter().flatten() {
            content.push(ContentBlock::ToolUse {
                id: tc["id"].as_str().unwrap_or("").to_string(),
                name: tc["function"]["name"].as_str().unwrap_or("").to_string(),
                input: parse_tool_args(tc["function"]["arguments"].as_str().unwrap_or("")),
            });
        }
        Ok(ModelResponse {
            content,
            stop_reason: stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
            usage: parse_usage(&v["usage"]),
            model: v["model"].as_str().unwrap_or(&model).to_string(),
            route: None,
        })
    }
}
