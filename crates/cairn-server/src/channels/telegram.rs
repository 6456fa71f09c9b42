//! Telegram, through the Bot API: long polling (`getUpdates`, the offset
//! saved only after the messages are committed) or a webhook (checked
//! against the secret token Telegram sends back), and `sendMessage` with
//! MarkdownV2 escaping, split at 4096 characters, honouring `retry_after`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::channel::{InboundMessage, OutboxItem};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Access, Channel, SendError, accept, constant_time_eq};
use crate::AppState;

/// `[channels.telegram]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramSettings {
    /// Bot token from @BotFather (set CAIRN_CHANNELS__TELEGRAM__TOKEN, not the file).
    pub token: String,
    /// Bot API base URL.
    pub api_url: String,
    /// `poll` (long polling; works behind NAT) or `webhook`.
    pub mode: String,
    /// Secret Telegram echoes in `X-Telegram-Bot-Api-Secret-Token` (webhook mode).
    pub webhook_secret: String,
    /// Public URL of `/channels/telegram/webhook` (webhook mode): registered
    /// with `setWebhook` at start; empty: register it yourself.
    pub webhook_url: String,
    /// Seconds one long poll waits for messages.
    pub poll_timeout_s: u64,
    /// Agent that answers.
    pub agent: String,
    /// Platform user ids (or `@usernames`) allowed; `"*"` for anyone.
    pub allow: Vec<String>,
    /// What someone not allowed is told.
    pub refusal: String,
}

impl Default for TelegramSettings {
    fn default() -> Self {
        TelegramSettings {
            token: String::new(),
            api_url: "https://api.telegram.org".into(),
            mode: "poll".into(),
            webhook_secret: String::new(),
            webhook_url: String::new(),
            poll_timeout_s: 30,
            agent: Access::default().agent,
            allow: vec![],
            refusal: Access::default().refusal,
        }
    }
}

impl TelegramSettings {
    /// Who may talk, and to which agent.
    pub fn access(&self) -> Access {
        Access {
            agent: self.agent.clone(),
            allow: self.allow.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

/// The Telegram channel.
pub struct Telegram {
    settings: TelegramSettings,
    http: reqwest::Client,
}

/// Telegram's limit on a message's text.
pub const MAX_CHARS: usize = 4096;

impl Telegram {
    /// A channel with these settings.
    pub fn new(settings: TelegramSettings, http: reqwest::Client) -> Telegram {
        Telegram { settings, http }
    }

    /// Whether it reads by long polling.
    pub fn polls(&self) -> bool {
        self.settings.mode != "webhook"
    }

    fn url(&self, method: &str) -> String {
        format!(
            "{}/bot{}/{method}",
            self.settings.api_url.trim_end_matches('/'),
            self.settings.token
        )
    }

    /// Tells Telegram how updates come: `setWebhook` (with the secret
    /// token) in webhook mode, `deleteWebhook` before long polling (a set
    /// webhook makes `getUpdates` fail with 409).
    pub async fn register(&self) -> Result<(), SendError> {
        let (method, body) = if self.polls() {
            ("deleteWebhook", json!({}))
        } else if self.settings.webhook_url.is_empty() {
            return Ok(());
        } else {
            (
                "setWebhook",
                json!({"url": self.settings.webhook_url, "secret_token": self.settings.webhook_secret,
                       "allowed_updates": ["message"]}),
            )
        };
        self.call(method, &body, Duration::from_secs(30))
            .await
            .map(|_| ())
    }

    /// One Bot API method: its answer, or Telegram's error as a
    /// `SendError` (transient or not, with its `retry_after`).
    async fn call(
        &self,
        method: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, SendError> {
        let resp = self
            .http
            .post(self.url(method))
            .json(body)
            .timeout(timeout)
            .send()
            .await
            // The token is part of the URL: never let it into an error.
            .map_err(|e| SendError::transient(e.without_url().to_string(), None))?;
        api_answer(resp).await
    }

    /// Reads updates until the server stops. The offset (Telegram's
    /// acknowledgement) moves only past messages already committed.
    pub async fn poll_loop(self: Arc<Self>, state: Arc<AppState>) {
        let mut offset: i64 = match state.tables.channels.channel_cursor("telegram").await {
            Ok(Some(c)) => c.parse().unwrap_or(0),
            _ => 0,
        };
        let mut failures = 0u32;
        loop {
            let body = json!({"offset": offset, "timeout": self.settings.poll_timeout_s, "allowed_updates": ["message"]});
            let call = self.call(
                "getUpdates",
                &body,
                Duration::from_secs(self.settings.poll_timeout_s + 15),
            );
            let answer = tokio::select! {
                r = call => r,
                _ = state.shutdown.cancelled() => return,
            };
            let wait = match answer {
                Ok(v) => {
                    let updates = v["result"].as_array().cloned().unwrap_or_default();
                    failures = 0;
                    let mut next = offset;
                    let mut committed = true;
                    for u in &updates {
                        let id = u["update_id"].as_i64().unwrap_or(0);
                        if let Some((msg, username)) = self.message(u)
                            && let Err(e) =
                                accept(&state, &self.settings.access(), &msg, username.as_deref())
                                    .await
                        {
                            tracing::warn!(error = %e.message, "telegram: cannot record a message; will read it again");
                            committed = false;
                            break;
                        }
                        next = next.max(id.saturating_add(1));
                    }
                    if next != offset {
                        offset = next;
                        if let Err(e) = state
                            .tables
                            .channels
                            .set_channel_cursor("telegram", &offset.to_string())
                            .await
                        {
                            tracing::warn!(error = %e, "telegram: cannot save the offset");
                        }
                    }
                    if committed {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(1)
                    }
                }
                Err(e) => {
                    failures += 1;
                    let backoff = e
                        .retry_after
                        .unwrap_or(Duration::from_secs(1u64 << failures.min(6)));
                    tracing::warn!(error = %e.message, wait_s = backoff.as_secs(), "telegram: getUpdates failed");
                    if e.permanent {
                        Duration::from_secs(60)
                    } else {
                        backoff
                    }
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = state.shutdown.cancelled() => return,
                }
            }
        }
    }

    /// The text message in an update, with the sender's username.
    fn message(&self, update: &Value) -> Option<(InboundMessage, Option<String>)> {
        let m = &update["message"];
        let text = m["text"].as_str()?;
        if m["from"]["is_bot"] == true {
            return None;
        }
        let chat = m["chat"]["id"].as_i64()?;
        let message_id = m["message_id"].as_i64()?;
        Some((
            InboundMessage {
                channel: "telegram".into(),
                platform_id: format!("{chat}:{message_id}"),
                chat_id: chat.to_string(),
                thread: None,
                user_id: m["from"]["id"]
                    .as_i64()
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
                text: text.to_string(),
            },
            m["from"]["username"].as_str().map(str::to_string),
        ))
    }
}

/// Telegram's answer: `{"ok": true, "result": …}`, or an error with
/// `error_code`, `description` and `parameters.retry_after`.
async fn api_answer(resp: reqwest::Response) -> Result<Value, SendError> {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.map_err(|e| {
        SendError::transient(
            format!("unreadable answer (HTTP {status}): {}", e.without_url()),
            None,
        )
    })?;
    if body["ok"] == true {
        return Ok(body);
    }
    let description = body["description"]
        .as_str()
        .unwrap_or("no description")
        .to_string();
    let code = body["error_code"].as_u64().unwrap_or(status as u64);
    let retry_after = body["parameters"]["retry_after"]
        .as_u64()
        .map(Duration::from_secs);
    let message = format!("Telegram {code}: {description}");
    Err(match code {
        429 | 500..=599 => SendError::transient(message, retry_after),
        _ => SendError::permanent(message),
    })
}

/// Escapes text for MarkdownV2 so it shows as written: every special
/// character outside code is escaped; inside code, only `` ` `` and `\`.
pub fn escape_markdown_v2(text: &str) -> String {
    const SPECIAL: &str = "_*[]()~`>#+-=|{}.!\\";
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let Some(len) = after.find("```") else { break };
        escape_plain(&rest[..start], SPECIAL, &mut out);
        out.push_str("```");
        for c in after[..len].chars() {
            if c == '`' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("```");
        rest = &after[len + 3..];
    }
    escape_plain(rest, SPECIAL, &mut out);
    out
}

fn escape_plain(text: &str, special: &str, out: &mut String) {
    for c in text.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[async_trait]
impl Channel for Telegram {
    fn name(&self) -> &str {
        "telegram"
    }

    fn max_chars(&self) -> usize {
        MAX_CHARS
    }

    async fn send(&self, item: &OutboxItem) -> Result<(), SendError> {
        let post = |body: Value| async move {
            self.call("sendMessage", &body, Duration::from_secs(30))
                .await
                .map(|_| ())
        };
        let formatted = json!({"chat_id": item.chat_id, "text": escape_markdown_v2(&item.text), "parse_mode": "MarkdownV2"});
        match post(formatted).await {
            // Formatting Telegram cannot parse must not lose the message:
            // send it as plain text instead.
            Err(e) if e.permanent && e.message.contains("can't parse entities") => {
                post(json!({"chat_id": item.chat_id, "text": item.text})).await
            }
            other => other,
        }
    }
}

/// `POST /channels/telegram/webhook`: an update from Telegram (webhook
/// mode). Without the right secret token: 401 and nothing stored.
pub async fn webhook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(tg) = state.channels.telegram.clone() else {
        return (StatusCode::NOT_FOUND, "telegram is not configured").into_response();
    };
    let given = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if tg.settings.webhook_secret.is_empty()
        || !constant_time_eq(given.as_bytes(), tg.settings.webhook_secret.as_bytes())
    {
        return (StatusCode::UNAUTHORIZED, "wrong or missing secret token").into_response();
    }
    let Ok(update) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not a JSON update").into_response();
    };
    let Some((msg, username)) = tg.message(&update) else {
        // Not a text message from a person: nothing to do, but received.
        return StatusCode::OK.into_response();
    };
    match accept(&state, &tg.settings.access(), &msg, username.as_deref()).await {
        Ok(_) => StatusCode::OK.into_response(),
        // Not acknowledged: Telegram delivers it again.
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_v2_escaping_keeps_text_as_written() {
        assert_eq!(
            escape_markdown_v2("1.5 + 2 = 3.5!"),
            "1\\.5 \\+ 2 \\= 3\\.5\\!"
        );
        assert_eq!(escape_markdown_v2("a_b *c*"), "a\\_b \\*c\\*");
        assert_eq!(
            escape_markdown_v2("run ```ls -la *.rs``` now."),
            "run ```ls -la *.rs``` now\\."
        );
        assert_eq!(
            escape_markdown_v2("unclosed ``` fence"),
            "unclosed \\`\\`\\` fence"
        );
    }
}
