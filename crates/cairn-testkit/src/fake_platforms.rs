//! Fakes of the messaging platforms, speaking their real HTTP APIs (per
//! their public documentation): Telegram's Bot API (`getUpdates` long
//! polling with offsets, `sendMessage` with its length limit, MarkdownV2
//! parsing errors and `retry_after`), Slack's Web API (`chat.postMessage`
//! with bearer auth and 429 + `Retry-After`), and signing of Slack events
//! and cairn webhooks the way the senders do it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

/// A failure the fake answers instead of succeeding.
#[derive(Debug, Clone)]
pub struct Failure {
    /// HTTP status.
    pub status: u16,
    /// Seconds to ask the client to wait, if any.
    pub retry_after: Option<u64>,
}

#[derive(Default)]
struct TgShared {
    token: String,
    next_update: i64,
    pending: Vec<Value>,
    sent: Vec<Value>,
    offsets: Vec<i64>,
    failures: VecDeque<Failure>,
    webhook: Option<Value>,
}

/// A fake Telegram Bot API server.
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Mutex<TgShared>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves `app` on 127.0.0.1 from a thread of its own (usable from sync
/// and async tests); dropping the sender stops it.
pub(crate) fn serve_on_thread(app: Router) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    (
        addr_rx.recv().expect("fake platform failed to start"),
        stop_tx,
    )
}

fn json_response(status: u16, body: Value, retry_after: Option<u64>) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json");
    if let Some(s) = retry_after {
        b = b.header("retry-after", s.to_string());
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn tg_error(code: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(s) = retry_after {
        body["parameters"] = json!({"retry_after": s});
    }
    json_response(code, body, None)
}

/// Telegram's MarkdownV2 rule: these characters must be escaped outside
/// code entities. Returns the first offender.
fn unescaped_markdown_v2(text: &str) -> Option<char> {
    const SPECIAL: &str = "_*[]()~>#+-=|{}.!";
    let mut chars = text.chars();
    let mut in_code = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '`' => in_code = !in_code,
            c if !in_code && SPECIAL.contains(c) => return Some(c),
            _ => {}
        }
    }
    None
}

impl FakeTelegram {
    /// Starts the fake for bot `token`.
    pub fn start(token: &str) -> FakeTelegram {
        let shared = Arc::new(Mutex::new(TgShared {
            token: token.to_string(),
            next_update: 1000,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/{bot}/{method}", post(tg_method))
            .with_state(shared.clone());
        let (addr, stop) = serve_on_thread(app);
        FakeTelegram {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// The Bot API base URL (`channels.telegram.api_url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A person writes to the bot; returns the update.
    pub fn user_says(&self, chat: i64, user: i64, username: &str, text: &str) -> Value {
        let mut s = self.shared.lock().unwrap();
        s.next_update += 1;
        let id = s.next_update;
        let update = json!({"update_id": id, "message": {
            "message_id": id * 10, "date": 1_764_000_000,
            "from": {"id": user, "is_bot": false, "first_name": username, "username": username},
            "chat": {"id": chat, "type": "private"}, "text": text}});
        s.pending.push(update.clone());
        update
    }

    /// Delivers an update again (as Telegram does when its receipt was
    /// not confirmed).
    pub fn redeliver(&self, update: &Value) {
        self.shared.lock().unwrap().pending.push(update.clone());
    }

    /// The next `sendMessage` calls fail like this, in order.
    pub fn fail_sends(&self, failures: impl IntoIterator<Item = Failure>) {
        self.shared.lock().unwrap().failures.extend(failures);
    }

    /// Every accepted `sendMessage` body.
    pub fn sent(&self) -> Vec<Value> {
        self.shared.lock().unwrap().sent.clone()
    }

    /// The `setWebhook` request in force, if any.
    pub fn webhook(&self) -> Option<Value> {
        self.shared.lock().unwrap().webhook.clone()
    }

    /// Sets a webhook as if another program had (getUpdates then fails with 409).
    pub fn preset_webhook(&self, url: &str) {
        self.shared.lock().unwrap().webhook = Some(json!({"url": url}));
    }

    /// Offsets the client asked `getUpdates` for.
    pub fn offsets(&self) -> Vec<i64> {
        self.shared.lock().unwrap().offsets.clone()
    }
}

async fn tg_method(
    State(shared): State<Arc<Mutex<TgShared>>>,
    Path((bot, method)): Path<(String, String)>,
    body: bytes::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    {
        let s = shared.lock().unwrap();
        if bot != format!("bot{}", s.token) {
            return tg_error(401, "Unauthorized", None);
        }
    }
    match method.as_str() {
        "getUpdates" => {
            if shared.lock().unwrap().webhook.is_some() {
                return tg_error(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                    None,
                );
            }
            let offset = body["offset"].as_i64().unwrap_or(0);
            let timeout = body["timeout"].as_u64().unwrap_or(0).min(2);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
            loop {
                {
                    let mut s = shared.lock().unwrap();
                    s.offsets.push(offset);
                    // Confirmed updates are forgotten, as Telegram does.
                    s.pending
                        .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                    if !s.pending.is_empty() || tokio::time::Instant::now() >= deadline {
                        let result: Vec<Value> = s.pending.drain(..).collect();
                        return json_response(200, json!({"ok": true, "result": result}), None);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        "sendMessage" => {
            let mut s = shared.lock().unwrap();
            if let Some(f) = s.failures.pop_front() {
                return match f.status {
                    429 => tg_error(
                        429,
                        &format!(
                            "Too Many Requests: retry after {}",
                            f.retry_after.unwrap_or(1)
                        ),
                        f.retry_after,
                    ),
                    code => tg_error(code, "Bad Gateway", None),
                };
            }
            let text = body["text"].as_str().unwrap_or("");
            if text.is_empty() {
                return tg_error(400, "Bad Request: message text is empty", None);
            }
            if visible_len(&body) > 4096 {
                return tg_error(400, "Bad Request: message is too long", None);
            }
            if body["parse_mode"] == "MarkdownV2"
                && let Some(c) = unescaped_markdown_v2(text)
            {
                return tg_error(
                    400,
                    &format!(
                        "Bad Request: can't parse entities: Character '{c}' is reserved and must be escaped with the preceding '\\'"
                    ),
                    None,
                );
            }
            s.sent.push(body.clone());
            json_response(
                200,
                json!({"ok": true, "result": {"message_id": s.sent.len(), "chat": {"id": body["chat_id"]}, "text": text}}),
                None,
            )
        }
        "setWebhook" => {
            if body["url"]
                .as_str()
                .is_none_or(|u| !u.starts_with("https://") && !u.starts_with("http://"))
            {
                return tg_error(
                    400,
                    "Bad Request: bad webhook: An HTTPS URL must be provided for webhook",
                    None,
                );
            }
            shared.lock().unwrap().webhook = Some(body);
            json_response(
                200,
                json!({"ok": true, "result": true, "description": "Webhook was set"}),
                None,
            )
        }
        "deleteWebhook" => {
            shared.lock().unwrap().webhook = None;
            json_response(
                200,
                json!({"ok": true, "result": true, "description": "Webhook was deleted"}),
                None,
            )
        }
        _ => tg_error(404, "Not Found: method not found", None),
    }
}

/// Length Telegram counts: the text after MarkdownV2 escapes are removed.
fn visible_len(body: &Value) -> usize {
    let text = body["text"].as_str().unwrap_or("");
    if body["parse_mode"] != "MarkdownV2" {
        return text.encode_utf16().count();
    }
    let mut n = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let c = if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        };
        n += c.len_utf16();
    }
    n
}

#[derive(Default)]
struct SlackShared {
    token: String,
    posted: Vec<Value>,
    failures: VecDeque<Failure>,
}

/// A fake Slack Web API.
pub struct FakeSlack {
    addr: SocketAddr,
    shared: Arc<Mutex<SlackShared>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeSlack {
    /// Starts the fake accepting bot token `token`.
    pub fn start(token: &str) -> FakeSlack {
        let shared = Arc::new(Mutex::new(SlackShared {
            token: token.to_string(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/api/chat.postMessage", post(slack_post))
            .with_state(shared.clone());
        let (addr, stop) = serve_on_thread(app);
        FakeSlack {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// The Web API base URL (`channels.slack.api_url`).
    pub fn url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The next `chat.postMessage` calls fail like this, in order.
    pub fn fail_posts(&self, failures: impl IntoIterator<Item = Failure>) {
        self.shared.lock().unwrap().failures.extend(failures);
    }

    /// Every accepted `chat.postMessage` body.
    pub fn posted(&self) -> Vec<Value> {
        self.shared.lock().unwrap().posted.clone()
    }
}

async fn slack_post(
    State(shared): State<Arc<Mutex<SlackShared>>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let mut s = shared.lock().unwrap();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", s.token) {
        return json_response(200, json!({"ok": false, "error": "invalid_auth"}), None);
    }
    if let Some(f) = s.failures.pop_front() {
        return match f.status {
            429 => json_response(
                429,
                json!({"ok": false, "error": "ratelimited"}),
                f.retry_after,
            ),
            code => json_response(code, json!({"ok": false, "error": "internal_error"}), None),
        };
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if body["channel"].as_str().unwrap_or("").is_empty() {
        return json_response(
            200,
            json!({"ok": false, "error": "channel_not_found"}),
            None,
        );
    }
    s.posted.push(body.clone());
    json_response(
        200,
        json!({"ok": true, "channel": body["channel"], "ts": format!("1764000000.{:06}", s.posted.len())}),
        None,
    )
}

/// Hex HMAC-SHA256, computed here independently of cairn's own code.
pub fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The headers Slack sends with an event: `X-Slack-Request-Timestamp` and
/// `X-Slack-Signature: v0=HMAC(secret, "v0:{ts}:{body}")`.
pub fn slack_signature(secret: &str, timestamp: i64, body: &str) -> (String, String) {
    let sig = hmac_hex(
        secret.as_bytes(),
        format!("v0:{timestamp}:{body}").as_bytes(),
    );
    (timestamp.to_string(), format!("v0={sig}"))
}

/// The headers of a signed cairn webhook: `X-Cairn-Timestamp` and
/// `X-Cairn-Signature: sha256=HMAC(secret, "{ts}.{body}")`.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &str) -> (String, String) {
    let sig = hmac_hex(secret.as_bytes(), format!("{timestamp}.{body}").as_bytes());
    (timestamp.to_string(), format!("sha256={sig}"))
}
