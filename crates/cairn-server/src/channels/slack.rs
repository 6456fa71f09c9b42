//! Slack, through the Events API: requests are verified with the signing
//! secret (`v0` HMAC-SHA256 over the timestamp and body, timestamps older
//! than five minutes refused) before anything is read; the URL-verification
//! handshake is answered; replies go through `chat.postMessage`, in the
//! message's thread, honouring `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::channel::{InboundMessage, OutboxItem};
use cairn_core::now_ms;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Access, Channel, SendError, accept, constant_time_eq, fresh, hmac_sha256_hex};
use crate::AppState;

/// `[channels.slack]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlackSettings {
    /// Bot token (`xoxb-…`; set CAIRN_CHANNELS__SLACK__BOT_TOKEN).
    pub bot_token: String,
    /// Signing secret (set CAIRN_CHANNELS__SLACK__SIGNING_SECRET).
    pub signing_secret: String,
    /// Web API base URL.
    pub api_url: String,
    /// Agent that answers.
    pub agent: String,
    /// Platform user ids (or `@usernames`) allowed; `"*"` for anyone.
    pub allow: Vec<String>,
    /// What someone not allowed is told.
    pub refusal: String,
}

impl Default for SlackSettings {
    fn default() -> Self {
        SlackSettings {
            bot_token: String::new(),
            signing_secret: String::new(),
            api_url: "https://slack.com/api".into(),
            agent: Access::default().agent,
            allow: vec![],
            refusal: Access::default().refusal,
        }
    }
}

impl SlackSettings {
    /// Who may talk, and to which agent.
    pub fn access(&self) -> Access {
        Access {
            agent: self.agent.clone(),
            allow: self.allow.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

/// The Slack channel.
pub struct Slack {
    settings: SlackSettings,
    http: reqwest::Client,
}

impl Slack {
    /// A channel with these settings.
    pub fn new(settings: SlackSettings, http: reqwest::Client) -> Slack {
        Slack { settings, http }
    }

    /// Whether `body` was signed by Slack with our signing secret, recently.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
        let ts = get("x-slack-request-timestamp");
        let Ok(t) = ts.parse::<i64>() else {
            return false;
        };
        if !fresh(t, now_ms() / 1000) || self.settings.signing_secret.is_empty() {
            return false;
        }
        let mut base = format!("v0:{ts}:").into_bytes();
        base.extend_from_slice(body);
        let expected = format!(
            "v0={}",
            hmac_sha256_hex(self.settings.signing_secret.as_bytes(), &base)
        );
        constant_time_eq(get("x-slack-signature").as_bytes(), expected.as_bytes())
    }
}

/// A person's message in an event callback, if it is one.
fn message(event: &Value) -> Option<InboundMessage> {
    let kind = event["type"].as_str()?;
    if (kind != "message" && kind != "app_mention")
        || event.get("bot_id").is_some()
        || event.get("subtype").is_some()
    {
        return None;
    }
    let channel = event["channel"].as_str()?;
    let ts = event["ts"].as_str()?;
    // A direct message is one conversation; in a channel each message
    // starts a thread (or continues the one it is in).
    let thread = match (event["thread_ts"].as_str(), event["channel_type"].as_str()) {
        (Some(t), _) => Some(t.to_string()),
        (None, Some("im")) => None,
        (None, _) => Some(ts.to_string()),
    };
    Some(InboundMessage {
        channel: "slack".into(),
        // A mention arrives as both `message` and `app_mention`: one id.
        platform_id: format!("{channel}:{ts}"),
        chat_id: channel.to_string(),
        thread,
        user_id: event["user"].as_str().unwrap_or("").to_string(),
        text: event["text"].as_str().unwrap_or("").to_string(),
    })
}

#[async_trait]
impl Channel for Slack {
    fn name(&self) -> &str {
        "slack"
    }

    fn max_chars(&self) -> usize {
        // chat.postMessage truncates beyond 40,000; Slack advises 4,000.
        4000
    }

    async fn send(&self, item: &OutboxItem) -> Result<(), SendError> {
        let mut body = json!({"channel": item.chat_id, "text": item.text});
        if let Some(t) = &item.thread {
            body["thread_ts"] = json!(t);
        }
        let resp = self
            .http
            .post(format!(
                "{}/chat.postMessage",
                self.settings.api_url.trim_end_matches('/')
            ))
            .bearer_auth(&self.settings.bot_token)
            .json(&body)
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
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 200 && answer["ok"] == true {
            return Ok(());
        }
        let error = answer["error"].as_str().unwrap_or("no error given");
        let message = format!("Slack HTTP {status}: {error}");
        Err(
            if status == 429 || status >= 500 || error == "ratelimited" {
                SendError::transient(message, retry_after)
            } else {
                SendError::permanent(message)
            },
        )
    }
}

/// `POST /channels/slack/events`: the Events API endpoint.
pub async fn events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(slack) = state.channels.slack.clone() else {
        return (StatusCode::NOT_FOUND, "slack is not configured").into_response();
    };
    if !slack.verify(&headers, &body) {
        return (StatusCode::UNAUTHORIZED, "invalid or stale Slack signature").into_response();
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    match payload["type"].as_str() {
        Some("url_verification") => {
            Json(json!({"challenge": payload["challenge"]})).into_response()
        }
        Some("event_callback") => {
            let Some(msg) = message(&payload["event"]) else {
                return StatusCode::OK.into_response();
            };
            match accept(&state, &slack.settings.access(), &msg, None).await {
                Ok(_) => StatusCode::OK.into_response(),
                // Not acknowledged: Slack retries.
                Err(e) => e.into_response(),
            }
        }
        _ => StatusCode::OK.into_response(),
    }
}
