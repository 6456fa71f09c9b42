//! A generic signed webhook: anything that can POST JSON talks to an agent.
//! Inbound requests carry `X-Cairn-Timestamp: <unix seconds>` and
//! `X-Cairn-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}" with
//! the shared secret>`; a timestamp more than five minutes off is refused,
//! so a captured request cannot be replayed after the dedup window. Replies
//! are POSTed to `reply_url`, signed the same way, retried until delivered.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::channel::{InboundMessage, OutboxItem};
use cairn_store::Accepted;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Access, Channel, SendError, accept, constant_time_eq, fresh, hmac_sha256_hex};
use crate::AppState;

/// `[channels.webhook.<name>]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Shared secret both directions are signed with.
    pub secret: String,
    /// Where replies are POSTed; empty: replies are only stored.
    pub reply_url: String,
    /// Agent that answers.
    pub agent: String,
    /// Platform user ids (or `@usernames`) allowed; `"*"` for anyone.
    pub allow: Vec<String>,
    /// What someone not allowed is told.
    pub refusal: String,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            secret: String::new(),
            reply_url: String::new(),
            agent: Access::default().agent,
            allow: vec!["*".into()],
            refusal: Access::default().refusal,
        }
    }
}

impl WebhookSettings {
    /// Who may talk, and to which agent.
    pub fn access(&self) -> Access {
        Access {
            agent: self.agent.clone(),
            allow: self.allow.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

/// A signed webhook channel.
pub struct Webhook {
    name: String,
    settings: WebhookSettings,
    http: reqwest::Client,
}

/// The body of an inbound webhook request.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookMessage {
    /// The sender's id for this message (redeliveries repeat it).
    pub id: String,
    /// Conversation it belongs to.
    pub chat: String,
    /// Who wrote it.
    pub user: String,
    /// What they wrote.
    pub text: String,
    /// Thread within the conversation.
    #[serde(default)]
    pub thread: Option<String>,
}

impl Webhook {
    /// A webhook channel `name`.
    pub fn new(name: &str, settings: WebhookSettings, http: reqwest::Client) -> Webhook {
        Webhook {
            name: format!("webhook.{name}"),
            settings,
            http,
        }
    }

    fn signature(&self, timestamp: i64, body: &[u8]) -> String {
        let mut signed = format!("{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        format!(
            "sha256={}",
            hmac_sha256_hex(self.settings.secret.as_bytes(), &signed)
        )
    }

    /// Why a request is not authentic, if it is not.
    fn verify(&self, headers: &HeaderMap, body: &[u8], now_s: i64) -> Result<(), &'static str> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(ts) = header("x-cairn-timestamp").and_then(|t| t.trim().parse::<i64>().ok())
        else {
            return Err("missing or unreadable X-Cairn-Timestamp (unix seconds)");
        };
        if !fresh(ts, now_s) {
            return Err(
                "X-Cairn-Timestamp is more than 5 minutes off: replayed, or the sender's clock is wrong",
            );
        }
        let given = header("x-cairn-signature").unwrap_or("");
        if self.settings.secret.is_empty()
            || !constant_time_eq(given.as_bytes(), self.signature(ts, body).as_bytes())
        {
            return Err("missing or wrong X-Cairn-Signature");
        }
        Ok(())
    }
}

#[async_trait]
impl Channel for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_chars(&self) -> usize {
        100_000
    }

    async fn send(&self, item: &OutboxItem) -> Result<(), SendError> {
        if self.settings.reply_url.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&json!({
            "id": item.id, "chat": item.chat_id, "thread": item.thread, "text": item.text, "run_id": item.run_id,
        }))
        .map_err(|e| SendError::permanent(e.to_string()))?;
        let ts = cairn_core::now_ms() / 1000;
        let resp = self
            .http
            .post(&self.settings.reply_url)
            .header("content-type", "application/json")
            .header("x-cairn-timestamp", ts.to_string())
            .header("x-cairn-signature", self.signature(ts, &body))
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| SendError::transient(e.without_url().to_string(), None))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => {
                Err(SendError::transient(format!("HTTP {status}"), retry_after))
            }
            _ => Err(SendError::permanent(format!("HTTP {status}"))),
        }
    }
}

/// `POST /channels/webhook/{name}`: a signed message. 202 with the run,
/// 200 for a redelivery, 401 (nothing stored) without a valid signature.
pub async fn inbound(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(hook) = state.channels.webhooks.get(&name).cloned() else {
        return (StatusCode::NOT_FOUND, "no such webhook channel").into_response();
    };
    if let Err(why) = hook.verify(&headers, &body, cairn_core::now_ms() / 1000) {
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    let m: WebhookMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid message: {e} (expected id, chat, user, text)"),
            )
                .into_response();
        }
    };
    if m.text.trim().is_empty() || m.id.is_empty() || m.chat.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "id, chat and text must not be empty",
        )
            .into_response();
    }
    let msg = InboundMessage {
        channel: hook.name.clone(),
        platform_id: m.id,
        chat_id: m.chat,
        thread: m.thread,
        user_id: m.user,
        text: m.text,
    };
    match accept(&state, &hook.settings.access(), &msg, None).await {
        Ok(Accepted::Queued { run_id }) => match state.tables.runs.get_run(&run_id).await {
            Ok(run) => (
                StatusCode::ACCEPTED,
                Json(json!({"run_id": run_id, "session_id": run.session_id})),
            )
                .into_response(),
            Err(e) => crate::error::ApiError::from(e).into_response(),
        },
        Ok(Accepted::Refused) => {
            (StatusCode::ACCEPTED, Json(json!({"refused": true}))).into_response()
        }
        Ok(Accepted::Duplicate) => {
            (StatusCode::OK, Json(json!({"duplicate": true}))).into_response()
        }
        Err(e) => e.into_response(),
    }
}
