//! OpenAI-compatible `/v1/chat/completions` and `/v1/models`: any OpenAI
//! client reaches an agent as model `cairn:<agent>`. Without an
//! `X-Cairn-Session` header each request is a new session (seeded with the
//! conversation the client sent); with it, the session continues and only
//! the last user message is new. Errors use OpenAI's error shape.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use cairn_core::{Message, Role, RunEvent, RunRecord, RunStatus};
use cairn_store::Found;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::Caller;
use crate::api::native::start_run;
use crate::error::ApiError;

/// Header naming the session to continue; echoed on every answer.
pub const SESSION_HEADER: &str = "x-cairn-session";

/// An error in OpenAI's shape.
struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    param: Option<&'static str>,
    message: String,
}

impl OpenAiError {
    fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: "invalid_request",
            param,
            message: message.into(),
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}});
        (self.status, Json(body)).into_response()
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        let (kind, code) = match e.status {
            StatusCode::NOT_FOUND => ("invalid_request_error", "not_found"),
            StatusCode::PAYLOAD_TOO_LARGE => ("invalid_request_error", "payload_too_large"),
            s if s.is_client_error() => ("invalid_request_error", "invalid_request"),
            _ => ("server_error", "internal_error"),
        };
        OpenAiError {
            status: e.status,
            kind,
            code,
            param: None,
            message: e.message,
        }
    }
}

fn model_id(agent: &str) -> String {
    format!("cairn:{agent}")
}

#[utoipa::path(get, path = "/v1/models", tag = "openai", description = "Agents as OpenAI models named `cairn:<agent>`.",
    responses((status = 200, description = "OpenAI model list")))]
pub async fn models(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let mut names: Vec<String> = state
        .tables
        .agents
        .list_agents()
        .await?
        .into_iter()
        .map(|a| a.name)
        .collect();
    if !names.iter().any(|n| n == "default") {
        names.insert(0, "default".into());
    }
    names.retain(|n| caller.shows_agent(n));
    let data: Vec<Value> = names
        .iter()
        .map(|n| json!({"id": model_id(n), "object": "model", "created": 0, "owned_by": "cairn"}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// Text of an OpenAI message's `content` (a string or a list of parts).
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
        ),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// The parts of OpenAI's chat completion request cairn reads (others are
/// accepted and ignored). Documentation only: the handler parses leniently.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ChatCompletionRequest {
    /// `cairn:<agent>`.
    model: String,
    /// The conversation; the last message must be from the user.
    #[schema(value_type = Vec<Object>)]
    messages: Vec<Value>,
    /// Stream `chat.completion.chunk` events.
    stream: Option<bool>,
    /// `{"include_usage": true}` adds a usage chunk to a stream.
    #[schema(value_type = Option<Object>)]
    stream_options: Option<Value>,
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatCompletionRequest,
    description = "OpenAI Chat Completions, streaming (SSE chunks, then `[DONE]`) or not. `model` is `cairn:<agent>`. Header `X-Cairn-Session` continues a session.",
    responses((status = 200, description = "chat.completion or a stream of chat.completion.chunk"), (status = 400, description = "OpenAI error"), (status = 404, description = "unknown model")))]
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match complete(state, &caller, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn complete(
    state: Arc<AppState>,
    caller: &Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let req: Value = serde_json::from_slice(&body)
        .map_err(|e| OpenAiError::invalid(format!("invalid JSON body: {e}"), None))?;
    let model = req["model"]
        .as_str()
        .ok_or_else(|| {
            OpenAiError::invalid("`model` is required (use cairn:<agent>)", Some("model"))
        })?
        .to_string();
    let agent = model.strip_prefix("cairn:").unwrap_or(&model).to_string();
    // A store error is an error, not "no such model".
    if state
        .agent(&agent)
        .await
        .found()
        .map_err(ApiError::from)?
        .is_none()
    {
        return Err(OpenAiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "model_not_found",
            param: Some("model"),
            message: format!(
                "The model `{model}` does not exist; GET /v1/models lists the agents (cairn:<agent>)"
            ),
        });
    }
    let (convo, last) = conversation(&req)?;
    let stream = req["stream"].as_bool().unwrap_or(false);
    let include_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let session_id = session_for(&state, caller, &headers, &agent, &convo).await?;
    let run = start_run(&state, caller, &session_id, last.text()).await?;
    let rx = state.hub.subscribe(&run.id);
    state.wake.notify_one();
    let session_header = HeaderValue::from_str(&session_id)
        .map_err(|e| OpenAiError::invalid(e.to_string(), None))?;
    let mut response = if stream {
        stream_chunks(state, run, model, rx, include_usage).into_response()
    } else {
        let done = crate::api::events::wait_for_run(&state, &run.id, rx).await?;
        if done.status != RunStatus::Completed {
            return Err(OpenAiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "server_error",
                code: "run_failed",
                param: None,
                message: format!(
                    "run {} {}: {}",
                    done.id,
                    done.status.as_str(),
                    done.error.as_deref().unwrap_or("no answer")
                ),
            });
        }
        Json(completion(&done, &model)).into_response()
    };
    response
        .headers_mut()
        .insert(SESSION_HEADER, session_header);
    Ok(response)
}

/// The earlier conversation a client sent, and its last (user) message.
fn conversation(req: &Value) -> Result<(Vec<Message>, Message), OpenAiError> {
    let messages = req["messages"].as_array().ok_or_else(|| {
        OpenAiError::invalid("`messages` must be a non-empty array", Some("messages"))
    })?;
    let mut convo = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let text = content_text(&m["content"]).ok_or_else(|| {
            OpenAiError::invalid(
                format!("messages[{i}].content must be a string or a list of text parts"),
                Some("messages"),
            )
        })?;
        let role = match m["role"].as_str() {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            // The agent's own system prompt applies; tool messages belong to
            // the client's tools, which cairn does not run.
            Some("system" | "developer" | "tool") => continue,
            other => {
                return Err(OpenAiError::invalid(
                    format!(
                        "messages[{i}].role {other:?} is not one of system, developer, user, assistant, tool"
                    ),
                    Some("messages"),
                ));
            }
        };
        convo.push(Message {
            role,
            content: vec![cairn_core::ContentBlock::Text { text }],
        });
    }
    let Some(last) = convo.pop().filter(|m| m.role == Role::User) else {
        return Err(OpenAiError::invalid(
            "the last message must be from the user",
            Some("messages"),
        ));
    };
    Ok((convo, last))
}

/// The session the request continues (`X-Cairn-Session`), or a new one
/// holding the conversation the client sent.
async fn session_for(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    agent: &str,
    convo: &[Message],
) -> Result<String, OpenAiError> {
    let store = &state.tables.sessions;
    if let Some(s) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        cairn_core::ids::validate_name("session", s)
            .map_err(|e| OpenAiError::invalid(e.to_string(), None))?;
        crate::api::caller::own_session(state, caller, s, agent).await?;
        return Ok(s.to_string());
    }
    let id = cairn_core::ids::new_id("ses");
    crate::api::caller::own_session(state, caller, &id, agent).await?;
    store
        .seed_messages(&id, convo)
        .await
        .map_err(ApiError::from)?;
    Ok(id)
}

fn usage(run: &RunRecord) -> Value {
    json!({"prompt_tokens": run.usage.input_tokens, "completion_tokens": run.usage.output_tokens,
           "total_tokens": run.usage.input_tokens + run.usage.output_tokens})
}

fn completion(run: &RunRecord, model: &str) -> Value {
    json!({
        "id": format!("chatcmpl-{}", run.id), "object": "chat.completion", "created": run.created_at / 1000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": run.output.clone().unwrap_or_default()},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": usage(run),
    })
}

/// Streams a run as `chat.completion.chunk` events: a role chunk, one chunk
/// per text delta, a closing chunk (or an error object), the usage chunk
/// when asked for, then `[DONE]`.
fn stream_chunks(
    state: Arc<AppState>,
    run: RunRecord,
    model: String,
    rx: tokio::sync::broadcast::Receiver<RunEvent>,
    include_usage: bool,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let id = format!("chatcmpl-{}", run.id);
    let created = run.created_at / 1000;
    let chunk = move |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let mut queue = VecDeque::new();
    queue.push_back(chunk(json!({"role": "assistant", "content": ""}), Value::Null).to_string());
    let init = Chunks {
        queue,
        done: false,
        first: true,
        state,
        run_id: run.id,
        rx,
        chunk,
        include_usage,
    };
    let stream = futures_util::stream::unfold(init, |mut st| async move {
        loop {
            if let Some(data) = st.queue.pop_front() {
                return Some((Ok(Event::default().data(data)), st));
            }
            if st.done {
                return None;
            }
            let first = std::mem::replace(&mut st.first, false);
            match super::events::next_event(&st.state, &st.run_id, &mut st.rx, first).await? {
                RunEvent::TextDelta { text } => st
                    .queue
                    .push_back((st.chunk)(json!({"content": text}), Value::Null).to_string()),
                RunEvent::RunFinished { run } => {
                    if run.status == RunStatus::Completed {
                        st.queue
                            .push_back((st.chunk)(json!({}), json!("stop")).to_string());
                        if st.include_usage {
                            let mut u = (st.chunk)(json!({}), Value::Null);
                            u["choices"] = json!([]);
                            u["usage"] = usage(&run);
                            st.queue.push_back(u.to_string());
                        }
                    } else {
                        let message = format!(
                            "run {} {}: {}",
                            run.id,
                            run.status.as_str(),
                            run.error.as_deref().unwrap_or("")
                        );
                        st.queue.push_back(json!({"error": {"message": message, "type": "server_error", "param": null, "code": "run_failed"}}).to_string());
                    }
                    st.queue.push_back("[DONE]".into());
                    st.done = true;
                }
                _ => {}
            }
        }
    });
    Sse::new(stream)
}

struct Chunks<F> {
    queue: VecDeque<String>,
    done: bool,
    first: bool,
    state: Arc<AppState>,
    run_id: String,
    rx: tokio::sync::broadcast::Receiver<RunEvent>,
    chunk: F,
    include_usage: bool,
}
