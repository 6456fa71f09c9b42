//! The two providers' wire formats as the fake speaks them, per their public
//! API references: Anthropic Messages (`message_start` … `message_stop`
//! events) and OpenAI Chat Completions (`chat.completion.chunk` objects,
//! a usage chunk, then `[DONE]`).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::Reply;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn call_id(prefix: &str) -> String {
    format!("{prefix}{:06}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Which API is being answered.
#[derive(Clone, Copy)]
pub(crate) enum Dialect {
    Anthropic,
    OpenAi,
}

/// Normalised content of a reply: text, then tool calls with raw argument text.
struct Parts {
    text: String,
    calls: Vec<(String, String, String)>,
}

fn parts(reply: &Reply, dialect: Dialect) -> Parts {
    let prefix = match dialect {
        Dialect::Anthropic => "toolu_fake",
        Dialect::OpenAi => "call_fake",
    };
    match reply {
        Reply::Text(t) => Parts {
            text: t.clone(),
            calls: vec![],
        },
        Reply::ToolCalls { text, calls } => Parts {
            text: text.clone(),
            calls: calls
                .iter()
                .map(|(n, a)| (call_id(prefix), n.clone(), a.to_string()))
                .collect(),
        },
        Reply::RawToolCall { name, arguments } => Parts {
            text: String::new(),
            calls: vec![(call_id(prefix), name.clone(), arguments.clone())],
        },
        _ => Parts {
            text: String::new(),
            calls: vec![],
        },
    }
}

/// Splits `s` into pieces of about `n` chars (on char boundaries), the way
/// providers deliver deltas.
fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
}

fn output_tokens(p: &Parts) -> u64 {
    ((p.text.len() + p.calls.iter().map(|c| c.2.len() + c.1.len()).sum::<usize>()) / 4 + 1) as u64
}

impl Dialect {
    /// The provider's answer to a prompt bigger than the model's window.
    pub fn overflow_body(self, prompt_tokens: u64, window: u64) -> Value {
        match self {
            Dialect::Anthropic => {
                json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": format!("prompt is too long: {prompt_tokens} tokens > {window} maximum")}})
            }
            Dialect::OpenAi => json!({"error": {
                "message": format!("This model's maximum context length is {window} tokens. However, your messages resulted in {prompt_tokens} tokens. Please reduce the length of the messages."),
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        }
    }

    pub fn error_body(self, status: u16, message: &str) -> Value {
        match self {
            Dialect::Anthropic => {
                let kind = match status {
                    400 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    _ => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": message}})
            }
            Dialect::OpenAi => {
                let (kind, code) = match status {
                    401 => ("invalid_request_error", "invalid_api_key"),
                    429 if message.contains("exceeded your current quota") => {
                        ("insufficient_quota", "insufficient_quota")
                    }
                    429 => ("requests", "rate_limit_exceeded"),
                    400 => ("invalid_request_error", "invalid_request"),
                    _ => ("server_error", "server_error"),
                };
                json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            }
        }
    }

    pub fn full_body(self, reply: &Reply, model: &str, input_tokens: u64) -> Value {
        let p = parts(reply, self);
        let out = output_tokens(&p);
        match self {
            Dialect::Anthropic => {
                let mut content = Vec::new();
                if !p.text.is_empty() {
                    content.push(json!({"type": "text", "text": p.text}));
                }
                for (id, name, args) in &p.calls {
                    let input: Value =
                        serde_json::from_str(args).unwrap_or(Value::String(args.clone()));
                    content
                        .push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
                }
                json!({
                    "id": call_id("msg_fake"), "type": "message", "role": "assistant", "model": model,
                    "content": content,
                    "stop_reason": if p.calls.is_empty() { "end_turn" } else { "tool_use" },
                    "stop_sequence": null,
                    "usage": {"input_tokens": input_tokens, "output_tokens": out}
                })
            }
            Dialect::OpenAi => {
                let mut message = json!({"role": "assistant", "content": if p.text.is_empty() { Value::Null } else { json!(p.text) }});
                if !p.calls.is_empty() {
                    message["tool_calls"] = p
                        .calls
                        .iter()
                        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                        .collect();
                }
                json!({
                    "id": call_id("chatcmpl-fake"), "object": "chat.completion", "created": 1_700_000_000, "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": null,
                                 "finish_reason": if p.calls.is_empty() { "stop" } else { "tool_calls" }}],
                    "usage": {"prompt_tokens": input_tokens, "completion_tokens": out, "total_tokens": input_tokens + out}
                })
            }
        }
    }

    pub fn stream_chunks(self, reply: &Reply, model: &str, input_tokens: u64) -> Vec<String> {
        let p = parts(reply, self);
        let out = output_tokens(&p);
        match self {
            Dialect::Anthropic => anthropic_stream(&p, model, input_tokens, out),
            Dialect::OpenAi => openai_stream(&p, model, input_tokens, out),
        }
    }
}

fn anthropic_event(kind: &str, data: Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

fn anthropic_stream(p: &Parts, model: &str, input_tokens: u64, out: u64) -> Vec<String> {
    let mut ev = vec![
        anthropic_event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": call_id("msg_fake"), "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ),
        anthropic_event("ping", json!({"type": "ping"})),
    ];
    let mut index = 0;
    if !p.text.is_empty() {
        ev.push(anthropic_event("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
        for piece in pieces(&p.text, 7) {
            ev.push(anthropic_event("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
        }
        ev.push(anthropic_event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for (id, name, args) in &p.calls {
        ev.push(anthropic_event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        ));
        for piece in pieces(args, 5) {
            ev.push(anthropic_event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": piece}}),
            ));
        }
        ev.push(anthropic_event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    ev.push(anthropic_event("message_delta", json!({"type": "message_delta",
        "delta": {"stop_reason": if p.calls.is_empty() { "end_turn" } else { "tool_use" }, "stop_sequence": null},
        "usage": {"output_tokens": out}})));
    ev.push(anthropic_event(
        "message_stop",
        json!({"type": "message_stop"}),
    ));
    ev
}

fn openai_stream(p: &Parts, model: &str, input_tokens: u64, out: u64) -> Vec<String> {
    let id = call_id("chatcmpl-fake");
    let chunk = |choices: Value, usage: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "system_fingerprint": null, "choices": choices});
        if !usage.is_null() {
            c["usage"] = usage;
        }
        format!("data: {c}\n\n")
    };
    let mut ev = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
        Value::Null,
    )];
    for piece in pieces(&p.text, 7) {
        ev.push(chunk(json!([{"index": 0, "delta": {"content": piece}, "logprobs": null, "finish_reason": null}]), Value::Null));
    }
    for (i, (call, name, args)) in p.calls.iter().enumerate() {
        ev.push(chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": i, "id": call, "type": "function",
            "function": {"name": name, "arguments": ""}}]}, "logprobs": null, "finish_reason": null}]), Value::Null));
        for piece in pieces(args, 5) {
            ev.push(chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": piece}}]},
                "logprobs": null, "finish_reason": null}]), Value::Null));
        }
    }
    let finish = if p.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    ev.push(chunk(
        json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}]),
        Value::Null,
    ));
    ev.push(chunk(json!([]), json!({"prompt_tokens": input_tokens, "completion_tokens": out, "total_tokens": input_tokens + out})));
    ev.push("data: [DONE]\n\n".to_string());
    ev
}
