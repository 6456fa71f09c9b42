//! The fake LLM: a real HTTP server on 127.0.0.1 answering from a script.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::wire;

/// What the fake answers to one model call.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A final text answer.
    Text(String),
    /// Tool calls `(name, arguments)`, optionally preceded by text.
    ToolCalls {
        /// Text before the calls (may be empty).
        text: String,
        /// Calls in order.
        calls: Vec<(String, Value)>,
    },
    /// Tool calls whose arguments are sent verbatim (e.g. invalid JSON).
    RawToolCall {
        /// Tool name.
        name: String,
        /// Arguments exactly as sent.
        arguments: String,
    },
    /// An HTTP error with the provider's error body and extra headers.
    Error {
        /// Status code.
        status: u16,
        /// Message inside the provider's error JSON.
        message: String,
        /// Extra headers such as `retry-after`.
        headers: Vec<(String, String)>,
    },
    /// A raw body sent as `text/event-stream` (for malformed streams).
    RawSse(String),
    /// Waits, then answers with the inner reply.
    Delayed(Duration, Box<Reply>),
    /// Waits until the file exists (the test made it ready), then answers
    /// with the inner reply; gives up after a minute with a 500.
    AfterFile(std::path::PathBuf, Box<Reply>),
    /// Streams the inner reply with a pause between chunks.
    Slow(Duration, Box<Reply>),
}

impl Reply {
    /// A text answer.
    pub fn text(t: &str) -> Reply {
        Reply::Text(t.to_string())
    }

    /// One tool call.
    pub fn tool(name: &str, args: Value) -> Reply {
        Reply::ToolCalls {
            text: String::new(),
            calls: vec![(name.to_string(), args)],
        }
    }

    /// Several tool calls in one response (the model asks for them in parallel).
    pub fn tools(calls: Vec<(&str, Value)>) -> Reply {
        Reply::ToolCalls {
            text: String::new(),
            calls: calls.into_iter().map(|(n, a)| (n.to_string(), a)).collect(),
        }
    }

    /// An HTTP error.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::Error {
            status,
            message: message.to_string(),
            headers: vec![],
        }
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Path, e.g. `/v1/messages`.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// JSON body (Null when not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request asked for streaming.
    pub fn stream(&self) -> bool {
        self.body["stream"].as_bool().unwrap_or(false)
    }

    /// All message texts (any role), in order, as plain strings; for
    /// asserting that history was sent.
    pub fn message_texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.body["messages"].as_array().into_iter().flatten() {
            match &m["content"] {
                Value::String(s) => out.push(s.clone()),
                Value::Array(parts) => {
                    for p in parts {
                        if let Some(t) = p["text"].as_str() {
                            out.push(t.to_string());
                        } else if let Some(t) = p["content"].as_str() {
                            out.push(t.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    requests: Vec<RecordedRequest>,
    embedding_requests: usize,
    context_window: Option<u64>,
    overflows: usize,
    /// Replies for requests whose body contains the key, before `script`.
    routed: Vec<(String, VecDeque<Reply>)>,
    /// Answers computed from the request, when nothing is scripted.
    responder: Option<Responder>,
}

/// Computes a reply from a request body (`None`: not mine).
pub type Responder = Arc<dyn Fn(&Value) -> Option<Reply> + Send + Sync>;

/// The fake's token count of a request: its JSON body's bytes / 4 (the
/// `input_tokens` it reports, and what its context window is checked on).
pub fn fake_prompt_tokens(body: &Value) -> u64 {
    (body.to_string().len() / 4) as u64
}

/// Handle to a running fake LLM; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeLlm {
    /// Starts the server on its own thread (usable from sync and async tests).
    pub fn start() -> FakeLlm {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/chat/completions", post(openai))
            .route("/v1/models", get(models))
            .route("/v1/embeddings", post(embeddings))
            .with_state(shared.clone());
        let (addr, stop_tx) = crate::fake_platforms::serve_on_thread(app);
        FakeLlm {
            addr,
            shared,
            _stop: stop_tx,
        }
    }

    /// `ANTHROPIC_BASE_URL` value.
    pub fn anthropic_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `OPENAI_BASE_URL` value.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Appends replies to the script, answered in order.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().unwrap().script.extend(replies);
    }

    /// Every model-call request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// How many `/v1/embeddings` requests were received.
    pub fn embedding_requests(&self) -> usize {
        self.shared.lock().unwrap().embedding_requests
    }

    /// Replies for requests whose JSON body contains `needle` (answered
    /// in order, ahead of the main script): for calls a test cannot place
    /// in the main sequence, such as summaries written when compacting.
    pub fn push_when(&self, needle: &str, replies: impl IntoIterator<Item = Reply>) {
        let mut s = self.shared.lock().unwrap();
        match s.routed.iter_mut().find(|(n, _)| n == needle) {
            Some((_, q)) => q.extend(replies),
            None => s
                .routed
                .push((needle.to_string(), replies.into_iter().collect())),
        }
    }

    /// Makes the fake's model have a context window of `tokens`: a request
    /// whose prompt is bigger gets the provider's context-overflow error
    /// (and uses no scripted reply).
    pub fn set_context_window(&self, tokens: u64) {
        self.shared.lock().unwrap().context_window = Some(tokens);
    }

    /// How many requests were refused as bigger than the context window.
    pub fn overflows(&self) -> usize {
        self.shared.lock().unwrap().overflows
    }

    /// Answers every request nothing is scripted for with `f(body)`: for
    /// many conversations at once (batches) whose requests may be repeated
    /// after a crash, where a consumed script would run dry.
    pub fn respond_with(&self, f: impl Fn(&Value) -> Option<Reply> + Send + Sync + 'static) {
        self.shared.lock().unwrap().responder = Some(Arc::new(f));
    }

    /// Drops the replies not yet used.
    pub fn clear_script(&self) {
        self.shared.lock().unwrap().script.clear();
    }
}

type AppState = State<Arc<Mutex<Shared>>>;

/// What the fake does with a request.
enum Answer {
    Scripted(Option<Reply>),
    /// The provider's refusal of a malformed conversation.
    Invalid(String),
    /// Prompt tokens, window.
    Overflow(u64, u64),
}

fn record(
    state: &Arc<Mutex<Shared>>,
    dialect: wire::Dialect,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (Value, Answer) {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.requests.push(RecordedRequest {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.clone(),
    });
    if let Err(e) = crate::validate::check(dialect, &body) {
        return (body, Answer::Invalid(e));
    }
    let tokens = fake_prompt_tokens(&body);
    if let Some(window) = s.context_window.filter(|w| tokens > *w) {
        s.overflows += 1;
        return (body, Answer::Overflow(tokens, window));
    }
    let text = body.to_string();
    let routed = s
        .routed
        .iter_mut()
        .find(|(needle, q)| !q.is_empty() && text.contains(needle.as_str()))
        .and_then(|(_, q)| q.pop_front());
    match routed {
        Some(r) => (body, Answer::Scripted(Some(r))),
        None => match s.script.pop_front() {
            Some(r) => (body, Answer::Scripted(Some(r))),
            None => {
                let reply = s.responder.clone().and_then(|f| f(&body));
                (body, Answer::Scripted(reply))
            }
        },
    }
}

async fn anthropic(
    State(state): AppState,
    uri: Uri,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let (req, reply) = record(&state, wire::Dialect::Anthropic, &uri, &headers, &body);
    respond(wire::Dialect::Anthropic, &req, reply).await
}

async fn openai(
    State(state): AppState,
    uri: Uri,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let (req, reply) = record(&state, wire::Dialect::OpenAi, &uri, &headers, &body);
    respond(wire::Dialect::OpenAi, &req, reply).await
}

async fn models() -> Response {
    json_response(
        200,
        json!({"object": "list", "data": [{"id": "fake-local-model", "object": "model", "owned_by": "fake"}]}),
        &[],
    )
}

/// Dimensions of the fake's embeddings.
pub const FAKE_EMBEDDING_DIMS: usize = 64;

/// OpenAI's `POST /v1/embeddings`: each input becomes a bag-of-words vector
/// (every lower-cased word adds one to a hashed slot), so texts sharing
/// words are similar and others are not — deterministic, no model. Model
/// `missing-model` answers 404 the way OpenAI does.
async fn embeddings(State(state): AppState, body: bytes::Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.lock().unwrap().embedding_requests += 1;
    let model = req["model"].as_str().unwrap_or("").to_string();
    if model == "missing-model" {
        return json_response(
            404,
            json!({"error": {"message": "The model `missing-model` does not exist", "type": "invalid_request_error", "param": null, "code": "model_not_found"}}),
            &[],
        );
    }
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            return json_response(
                400,
                json!({"error": {"message": "'input' is a required property", "type": "invalid_request_error", "param": "input", "code": null}}),
                &[],
            );
        }
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut v = vec![0f32; FAKE_EMBEDDING_DIMS];
            for w in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let h = w
                    .to_lowercase()
                    .bytes()
                    .fold(5381u64, |h, b| h.wrapping_mul(33) ^ b as u64);
                v[(h % FAKE_EMBEDDING_DIMS as u64) as usize] += 1.0;
            }
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    json_response(
        200,
        json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
        &[],
    )
}

async fn respond(dialect: wire::Dialect, req: &Value, answer: Answer) -> Response {
    let reply = match answer {
        Answer::Overflow(tokens, window) => {
            return json_response(400, dialect.overflow_body(tokens, window), &[]);
        }
        Answer::Invalid(message) => {
            return json_response(400, dialect.error_body(400, &message), &[]);
        }
        Answer::Scripted(reply) => reply,
    };
    let Some(mut reply) = reply else {
        return json_response(
            500,
            dialect.error_body(
                500,
                "fake llm: script exhausted (test pushed too few replies)",
            ),
            &[],
        );
    };
    let mut chunk_delay = Duration::ZERO;
    loop {
        match reply {
            Reply::Delayed(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::AfterFile(path, inner) => {
                let start = std::time::Instant::now();
                while !path.exists() {
                    if start.elapsed() > Duration::from_secs(60) {
                        let body =
                            dialect.error_body(500, "fake llm: the gate file never appeared");
                        return json_response(500, body, &[]);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                reply = *inner;
            }
            Reply::Slow(d, inner) => {
                chunk_delay = d;
                reply = *inner;
            }
            _ => break,
        }
    }
    match reply {
        Reply::Error {
            status,
            message,
            headers,
        } => json_response(status, dialect.error_body(status, &message), &headers),
        Reply::RawSse(raw) => sse_response(vec![raw], Duration::ZERO),
        other => {
            let stream = req["stream"].as_bool().unwrap_or(false);
            let model = req["model"].as_str().unwrap_or("fake-model").to_string();
            let input_tokens = fake_prompt_tokens(req);
            if stream {
                sse_response(
                    dialect.stream_chunks(&other, &model, input_tokens),
                    chunk_delay,
                )
            } else {
                json_response(200, dialect.full_body(&other, &model, input_tokens), &[])
            }
        }
    }
}

fn json_response(status: u16, body: Value, headers: &[(String, String)]) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn sse_response(chunks: Vec<String>, delay: Duration) -> Response {
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), delay, true),
        |(mut it, delay, first)| async move {
            let next = it.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((
                Ok::<_, std::io::Error>(bytes::Bytes::from(next)),
                (it, delay, false),
            ))
        },
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}
