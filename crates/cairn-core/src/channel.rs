//! Messages crossing a channel (Telegram, Slack, a signed webhook), as the
//! store keeps them: the durable inbox and outbox.

use serde::{Deserialize, Serialize};

/// A message a platform delivered.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Channel name (`telegram`, `slack`, `webhook.<name>`).
    pub channel: String,
    /// The platform's id of the message (de-duplicates redeliveries).
    pub platform_id: String,
    /// Chat, channel or conversation it came from.
    pub chat_id: String,
    /// Thread within the chat, when the platform has them.
    pub thread: Option<String>,
    /// The platform's id of the sender.
    pub user_id: String,
    /// What they wrote.
    pub text: String,
}

impl InboundMessage {
    /// The session a chat (or thread) maps to: one per conversation.
    pub fn session_id(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let base = format!("{}-{}", clean(&self.channel), clean(&self.chat_id));
        match &self.thread {
            Some(t) => format!("{base}-{}", clean(t)),
            None => base,
        }
    }
}

/// A reply waiting to be delivered (or delivered, or given up on).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Id (`out_…`).
    pub id: String,
    /// Channel to send on.
    pub channel: String,
    /// Chat to send to.
    pub chat_id: String,
    /// Thread to reply in.
    pub thread: Option<String>,
    /// The text.
    pub text: String,
    /// The run it answers, if any.
    pub run_id: Option<String>,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Earliest next attempt (ms).
    pub next_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}
