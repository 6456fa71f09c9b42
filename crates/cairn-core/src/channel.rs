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
    /// The session a chat (or thread) maps to: one per conversation, and
    /// never one for two (the mapping is injective).
    ///
    /// A conversation whose names are plain — channel and thread of
    /// `[A-Za-z0-9._]`, the chat the same with an optional leading `-`
    /// (Telegram groups) — keeps the readable `channel-chat[-thread]`
    /// earlier versions gave it: those split back one way only. Any other
    /// gets that form made safe plus `--` and a digest of the exact names,
    /// which no plain id can end with (a plain id's only `--` directly
    /// follows its channel).
    pub fn session_id(&self) -> String {
        let legacy = self.legacy_session_id();
        if self.is_plain() {
            return legacy;
        }
        format!("{legacy}--{}", self.digest())
    }

    /// The id earlier versions gave this conversation, not injective
    /// (`room/1` and `room_1` shared one); kept to continue conversations
    /// made before the upgrade.
    pub fn legacy_session_id(&self) -> String {
        legacy_session_id(&self.channel, &self.chat_id, self.thread.as_deref())
    }

    fn is_plain(&self) -> bool {
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_'))
        };
        plain(&self.channel)
            && plain(self.chat_id.strip_prefix('-').unwrap_or(&self.chat_id))
            && self.thread.as_deref().is_none_or(plain)
    }

    /// 64 bits of SHA-256 over the exact names, each length-prefixed.
    fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let parts = [
            Some(self.channel.as_str()),
            Some(self.chat_id.as_str()),
            self.thread.as_deref(),
        ];
        for part in parts {
            match part {
                Some(p) => {
                    h.update((p.len() as u64).to_be_bytes());
                    h.update(p.as_bytes());
                }
                None => h.update(u64::MAX.to_be_bytes()),
            }
        }
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The mapping before ids were injective: characters outside
/// `[A-Za-z0-9._-]` become `_`, parts are joined with `-`.
pub fn legacy_session_id(channel: &str, chat: &str, thread: Option<&str>) -> String {
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
    let base = format!("{}-{}", clean(channel), clean(chat));
    match thread {
        Some(t) => format!("{base}-{}", clean(t)),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(channel: &str, chat: &str, thread: Option<&str>) -> InboundMessage {
        InboundMessage {
            channel: channel.into(),
            platform_id: "1".into(),
            chat_id: chat.into(),
            thread: thread.map(str::to_string),
            user_id: "u".into(),
            text: "t".into(),
        }
    }

    #[test]
    fn plain_conversations_keep_their_ids() {
        assert_eq!(
            msg("telegram", "-1001234", None).session_id(),
            "telegram--1001234"
        );
        assert_eq!(
            msg("slack", "C123", Some("1700000000.123")).session_id(),
            "slack-C123-1700000000.123"
        );
    }

    #[test]
    fn distinct_conversations_never_share_a_session() {
        let cases = [
            msg("webhook.ci", "room/1", None),
            msg("webhook.ci", "room_1", None),
            msg("webhook.ci", "room 1", None),
            msg("webhook.ci", "proj", Some("q1")),
            msg("webhook.ci", "proj-q1", None),
            msg("webhook.ci", "proj", Some("-q1")),
            msg("webhook.ci", "proj-", Some("q1")),
            msg("webhook.ci", "-1", None),
            msg("webhook.ci", "-1", Some("2")),
            msg("webhook.ci", "-1-2", None),
            msg("webhook.ci", "a", Some("")),
            msg("webhook.ci", "a", None),
            msg("webhook-ci", "a", None),
            msg("webhook", "ci-a", None),
        ];
        let ids: std::collections::HashSet<String> =
            cases.iter().map(InboundMessage::session_id).collect();
        assert_eq!(ids.len(), cases.len(), "{ids:?}");
        for id in &ids {
            crate::ids::validate_name("session", id).unwrap();
        }
        // A plain name chosen to look like another's digest does not land
        // on it.
        let victim = msg("webhook.ci", "room/1", None).session_id();
        let (head, digest) = victim.split_once("--").unwrap();
        let forged = msg(
            "webhook.ci",
            head.trim_start_matches("webhook.ci-"),
            Some(&format!("-{digest}")),
        );
        assert_ne!(forged.session_id(), victim);
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
