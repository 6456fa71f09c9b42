//! Channels: where people talk to agents (Telegram, Slack, signed
//! webhooks; the terminal is `cairn chat`). Every adapter does the same
//! three things through the store:
//!
//! 1. **Inbound**: a message is committed to the inbox — with the run it
//!    starts, or the refusal a stranger gets — before the platform is told
//!    it arrived; a redelivery (same platform message id) does nothing.
//!    One session per chat (or thread); turns of a session run in order.
//! 2. **Replies**: when such a run ends, its answer is enqueued once.
//! 3. **Outbound**: the outbox is delivered in order per chat, retried
//!    with backoff (honouring the platform's retry-after) across restarts,
//!    and dead-lettered after [`MAX_ATTEMPTS`] or a permanent refusal.

pub mod slack;
pub mod telegram;
pub mod webhook;

pub use cairn_core::keys::constant_time_eq;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::channel::{InboundMessage, OutboxItem};
use cairn_core::{RunRecord, RunStatus, now_ms};
use cairn_store::{Accepted, Found, NewOutbound, StoreError};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::AppState;

/// Delivery attempts before an outbound message is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 8;

/// Why a delivery failed.
#[derive(Debug)]
pub struct SendError {
    /// What happened.
    pub message: String,
    /// Never worth retrying (a chat that does not exist, a bad token).
    pub permanent: bool,
    /// The wait the platform asked for.
    pub retry_after: Option<Duration>,
}

impl SendError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>, retry_after: Option<Duration>) -> SendError {
        SendError {
            message: message.into(),
            permanent: false,
            retry_after,
        }
    }

    /// A failure not worth retrying.
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            permanent: true,
            retry_after: None,
        }
    }
}

/// A channel's sending side.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Name in the store (`telegram`, `slack`, `webhook.<name>`).
    fn name(&self) -> &str;

    /// Longest message the platform takes, in characters.
    fn max_chars(&self) -> usize;

    /// Delivers one message.
    async fn send(&self, item: &OutboxItem) -> Result<(), SendError>;
}

/// Who may talk to an agent through a channel, and which agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Access {
    /// Agent that answers.
    pub agent: String,
    /// Platform user ids (or `@usernames`) allowed; `"*"` for anyone. Empty:
    /// nobody (strangers get `refusal`, and the log says who tried).
    pub allow: Vec<String>,
    /// What a stranger is told.
    pub refusal: String,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            agent: "default".into(),
            allow: vec![],
            refusal: "Sorry, I only talk to people I know. Ask my owner to add you.".into(),
        }
    }
}

impl Access {
    /// Whether a sender (by id and, where the platform has one, name) may talk.
    pub fn allows(&self, user_id: &str, username: Option<&str>) -> bool {
        self.allow.iter().any(|a| {
            a == "*"
                || a == user_id
                || username.is_some_and(|u| {
                    a.strip_prefix('@')
                        .is_some_and(|a| a.eq_ignore_ascii_case(u))
                })
        })
    }
}

/// `[channels]`: every channel's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelSettings {
    /// Telegram bot.
    pub telegram: Option<telegram::TelegramSettings>,
    /// Slack app.
    pub slack: Option<slack::SlackSettings>,
    /// Signed webhooks by name.
    pub webhook: BTreeMap<String, webhook::WebhookSettings>,
    /// People by cairn user name, each with their platform ids
    /// (`telegram:123`, `slack:U024BE7LH`, `webhook.ops:oncall`): one person
    /// across channels. Unmapped senders are `<channel>:<id>`.
    pub users: BTreeMap<String, Vec<String>>,
}

/// Something wrong with a channel's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `[channels.…]` table it is in.
    pub channel: String,
    /// The channel cannot work (not just a doubtful choice).
    pub fatal: bool,
    /// What to fix.
    pub message: String,
}

impl ChannelSettings {
    /// What would stop each configured channel from working, or looks
    /// like a mistake.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut need = |channel: &str, fatal: bool, message: String| {
            out.push(Problem {
                channel: channel.to_string(),
                fatal,
                message,
            })
        };
        let nobody = "allow is empty: everyone gets the refusal (add user ids, or \"*\")";
        if let Some(t) = &self.telegram {
            if t.token.trim().is_empty() {
                need(
                    "telegram",
                    true,
                    "no bot token: set CAIRN_CHANNELS__TELEGRAM__TOKEN (from @BotFather)".into(),
                );
            }
            match t.mode.as_str() {
                "poll" => {}
                "webhook" if t.webhook_secret.trim().is_empty() => need(
                    "telegram",
                    true,
                    "webhook mode needs webhook_secret (Telegram sends it back; without it anyone could post updates)".into(),
                ),
                "webhook" => {}
                other => need("telegram", true, format!("mode is \"poll\" or \"webhook\", not {other:?}")),
            }
            if t.allow.is_empty() {
                need("telegram", false, nobody.into());
            }
        }
        if let Some(sl) = &self.slack {
            if sl.bot_token.trim().is_empty() {
                need(
                    "slack",
                    true,
                    "no bot token: set CAIRN_CHANNELS__SLACK__BOT_TOKEN (xoxb-…)".into(),
                );
            }
            if sl.signing_secret.trim().is_empty() {
                need(
                    "slack",
                    true,
                    "no signing secret: set CAIRN_CHANNELS__SLACK__SIGNING_SECRET".into(),
                );
            }
            if sl.allow.is_empty() {
                need("slack", false, nobody.into());
            }
        }
        for (name, w) in &self.webhook {
            let table = format!("webhook.{name}");
            if w.secret.trim().is_empty() {
                need(
                    &table,
                    true,
                    format!(
                        "no secret: set CAIRN_CHANNELS__WEBHOOK__{}__SECRET",
                        name.to_uppercase()
                    ),
                );
            }
            if cairn_core::ids::validate_name("webhook", name).is_err() {
                need(
                    &table,
                    true,
                    "the name may use letters, digits, '.', '_' and '-'".into(),
                );
            }
        }
        out
    }
}

/// The channels a server runs.
#[derive(Default, Clone)]
pub struct Channels {
    /// Telegram, when configured.
    pub telegram: Option<Arc<telegram::Telegram>>,
    /// Slack, when configured.
    pub slack: Option<Arc<slack::Slack>>,
    /// Webhooks by name.
    pub webhooks: BTreeMap<String, Arc<webhook::Webhook>>,
    /// Platform id (`<channel>:<id>`) → cairn user.
    pub people: BTreeMap<String, String>,
}

impl Channels {
    /// Builds the configured channels.
    pub fn new(settings: &ChannelSettings, http: reqwest::Client) -> Channels {
        Channels {
            telegram: settings
                .telegram
                .clone()
                .map(|s| Arc::new(telegram::Telegram::new(s, http.clone()))),
            slack: settings
                .slack
                .clone()
                .map(|s| Arc::new(slack::Slack::new(s, http.clone()))),
            webhooks: settings
                .webhook
                .iter()
                .map(|(n, s)| {
                    (
                        n.clone(),
                        Arc::new(webhook::Webhook::new(n, s.clone(), http.clone())),
                    )
                })
                .collect(),
            people: settings
                .users
                .iter()
                .flat_map(|(user, ids)| ids.iter().map(move |id| (id.clone(), user.clone())))
                .collect(),
        }
    }

    fn senders(&self) -> Vec<Arc<dyn Channel>> {
        let mut out: Vec<Arc<dyn Channel>> = Vec::new();
        if let Some(t) = &self.telegram {
            out.push(t.clone());
        }
        if let Some(s) = &self.slack {
            out.push(s.clone());
        }
        for w in self.webhooks.values() {
            out.push(w.clone());
        }
        out
    }

    fn max_chars(&self, channel: &str) -> usize {
        self.senders()
            .iter()
            .find(|c| c.name() == channel)
            .map(|c| c.max_chars())
            .unwrap_or(4000)
    }
}

/// The `[channels.users]` name that maps a sender to the local owner.
pub const LOCAL_OWNER: &str = "owner";

/// Records an inbound message for `access`'s agent: a queued run for an
/// allowed sender, a refusal for a stranger; a redelivery is a duplicate.
pub async fn accept(
    state: &AppState,
    access: &Access,
    msg: &InboundMessage,
    username: Option<&str>,
) -> Result<Accepted, crate::error::ApiError> {
    let platform_id = format!("{}:{}", msg.channel, msg.user_id);
    let person = state
        .channels
        .people
        .get(&platform_id)
        .cloned()
        .unwrap_or(platform_id);
    if !access.allows(&msg.user_id, username) {
        tracing::warn!(
            channel = %msg.channel, user = %msg.user_id, username = username.unwrap_or(""),
            "message from someone not in the allowlist: refused (add them to `allow` to let them in)"
        );
        return Ok(state
            .tables
            .channels
            .accept_inbound(msg, None, Some(&access.refusal))
            .await?);
    }
    let agent = state.agent(&access.agent).await?;
    let session = session_for(state, msg).await?;
    let mut run = state
        .rt
        .queued_run(&agent, session, msg.text.clone(), now_ms());
    // The run works for its sender: in a group chat each speaker's facts
    // and schedules stay theirs. `owner` is the local owner (CLI, API).
    run.user_id = (person != LOCAL_OWNER).then(|| person.clone());
    let accepted = state
        .tables
        .channels
        .accept_inbound(msg, Some(&run), None)
        .await?;
    if matches!(accepted, Accepted::Queued { .. }) {
        state.rt.message_queued();
        state.wake.notify_waiters();
    }
    Ok(accepted)
}

/// The session of `msg`'s conversation. Ids are injective now; a
/// conversation whose earlier id differs continues under it when that
/// session exists and no other conversation ever mapped to it (one that
/// did was mixed with another's, and gets a session of its own).
async fn session_for(state: &AppState, msg: &InboundMessage) -> Result<String, StoreError> {
    let (id, legacy) = (msg.session_id(), msg.legacy_session_id());
    if id == legacy {
        return Ok(id);
    }
    if state
        .tables
        .sessions
        .get_session(&id)
        .await
        .found()?
        .is_some()
        || state
            .tables
            .sessions
            .get_session(&legacy)
            .await
            .found()?
            .is_none()
    {
        return Ok(id);
    }
    let users: Vec<(String, Option<String>)> = state
        .tables
        .channels
        .inbound_conversations(&msg.channel)
        .await?
        .into_iter()
        .filter(|(chat, thread)| {
            cairn_core::channel::legacy_session_id(&msg.channel, chat, thread.as_deref()) == legacy
        })
        .collect();
    let sole = !users.is_empty()
        && users
            .iter()
            .all(|(chat, thread)| *chat == msg.chat_id && *thread == msg.thread);
    Ok(if sole { legacy } else { id })
}

/// Splits `text` into pieces of at most `max` characters (counted in
/// UTF-16 units, as Telegram counts), at paragraph, line or word breaks
/// when there is one.
pub fn split_message(text: &str, max: usize) -> Vec<String> {
    let max = max.max(16);
    let units = |s: &str| s.encode_utf16().count();
    let mut out = Vec::new();
    let mut rest = text.trim();
    while units(rest) > max {
        // The longest prefix within the limit.
        let mut end = 0;
        let mut count = 0;
        for (i, c) in rest.char_indices() {
            count += c.len_utf16();
            if count > max {
                break;
            }
            end = i + c.len_utf8();
        }
        let window = &rest[..end];
        let cut = ["\n\n", "\n", " "]
            .iter()
            .filter_map(|sep| window.rfind(sep))
            .find(|&at| at > end / 2)
            .unwrap_or(end);
        out.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// The reply a finished run gives on a channel.
fn reply_text(run: &RunRecord) -> String {
    match run.status {
        RunStatus::Completed => run
            .output
            .clone()
            .filter(|o| !o.trim().is_empty())
            .unwrap_or_else(|| "(no answer)".into()),
        RunStatus::Cancelled => "(stopped before answering)".into(),
        _ => format!(
            "Sorry, that failed: {}",
            run.error.as_deref().unwrap_or("unknown error")
        ),
    }
}

/// Starts the reply and delivery loops, and Telegram's poller.
pub fn start(state: Arc<AppState>, channels: Channels, set: &mut JoinSet<()>) {
    if channels.senders().is_empty() {
        return;
    }
    let replies = state.clone();
    let limits = channels.clone();
    set.spawn(async move {
        loop {
            // Registered before the work, so a run that ends meanwhile is
            // not missed (notify_waiters keeps no permit).
            let woken = replies.run_done.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match replies.tables.channels.awaiting_replies(50).await {
                Ok(done) => {
                    for d in done {
                        let out = NewOutbound {
                            channel: d.message.channel.clone(),
                            chat_id: d.message.chat_id.clone(),
                            thread: d.message.thread.clone(),
                            parts: split_message(
                                &reply_text(&d.run),
                                limits.max_chars(&d.message.channel),
                            ),
                            run_id: Some(d.run.id.clone()),
                        };
                        match replies
                            .tables
                            .channels
                            .enqueue_reply(&d.message, &out)
                            .await
                        {
                            Ok(_) => replies.outbox.notify_waiters(),
                            Err(e) => tracing::warn!(error = %e, "cannot enqueue a reply"),
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read finished channel runs"),
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = replies.shutdown.cancelled() => break,
            }
        }
    });
    for channel in channels.senders() {
        let state = state.clone();
        set.spawn(async move { deliver_loop(state, channel).await });
    }
    if let Some(t) = channels.telegram.clone() {
        let state = state;
        set.spawn(async move {
            if let Err(e) = t.register().await {
                tracing::warn!(error = %e.message, "telegram: cannot register how updates arrive");
            }
            if t.polls() {
                t.poll_loop(state).await;
            }
        });
    }
}

async fn deliver_loop(state: Arc<AppState>, channel: Arc<dyn Channel>) {
    loop {
        // Registered before reading, so a reply enqueued meanwhile is not
        // left waiting for the next poll.
        let woken = state.outbox.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let due = state
            .tables
            .channels
            .due_outbound(channel.name(), now_ms(), 20)
            .await;
        match due {
            Ok(items) => {
                for item in items {
                    let result = channel.send(&item).await;
                    let record = match result {
                        Ok(()) => Ok(()),
                        Err(e) => {
                            let attempts = item.attempts + 1;
                            let retry_at = (!e.permanent && attempts < MAX_ATTEMPTS).then(|| {
                                let backoff = Duration::from_secs(1u64 << attempts.min(8) as u32)
                                    .min(Duration::from_secs(300));
                                now_ms() + e.retry_after.unwrap_or(backoff).as_millis() as i64
                            });
                            tracing::warn!(channel = channel.name(), item = %item.id, attempts, error = %e.message,
                                "delivery failed{}", if retry_at.is_some() { "; will retry" } else { "; dead-lettered" });
                            Err((e.message, retry_at))
                        }
                    };
                    if let Err(e) = state
                        .tables
                        .channels
                        .outbound_attempt(&item.id, record)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot record a delivery attempt");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the outbox"),
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = state.shutdown.cancelled() => break,
        }
    }
}

/// Hex of HMAC-SHA256(`key`, `data`).
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match <Hmac<sha2::Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length; this cannot fail.
        Err(_) => return String::new(),
    };
    mac.update(data);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How far a signed request's timestamp may be from our clock (Slack's
/// rule, used for our own webhooks too).
const MAX_SIGNATURE_SKEW_S: i64 = 300;

/// Whether a signed request's timestamp (unix seconds, the sender's to
/// choose, so the arithmetic saturates) is within five minutes of `now_s`.
pub fn fresh(timestamp_s: i64, now_s: i64) -> bool {
    now_s.saturating_sub(timestamp_s).saturating_abs() <= MAX_SIGNATURE_SKEW_S
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_timestamps_are_fresh_within_five_minutes_whatever_is_sent() {
        let now = 1_800_000_000;
        assert!(fresh(now, now));
        assert!(fresh(now - 300, now) && fresh(now + 300, now));
        assert!(!fresh(now - 301, now) && !fresh(now + 301, now));
        // Chosen to overflow: refused, not a panic.
        assert!(!fresh(i64::MIN, now) && !fresh(i64::MAX, now));
    }

    #[test]
    fn long_messages_split_at_breaks_within_the_limit() {
        let para = "word ".repeat(300);
        let text = format!("{para}\n\n{para}\n\n{para}");
        let parts = split_message(&text, 4096);
        assert!(parts.len() >= 2);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= 4096));
        assert_eq!(parts.join(" ").split_whitespace().count(), 900);
        // No break at all: a hard cut, on a char boundary.
        let emoji = "😀".repeat(3000);
        let parts = split_message(&emoji, 4096);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= 4096));
        assert_eq!(parts.concat(), emoji);
        assert_eq!(split_message("hi", 4096), vec!["hi"]);
    }

    #[test]
    fn allowlists_match_ids_names_and_everyone() {
        let a = Access {
            allow: vec!["42".into(), "@Alice".into()],
            ..Default::default()
        };
        assert!(a.allows("42", None));
        assert!(a.allows("7", Some("alice")));
        assert!(!a.allows("7", Some("mallory")));
        assert!(!Access::default().allows("42", None));
        let all = Access {
            allow: vec!["*".into()],
            ..Default::default()
        };
        assert!(all.allows("anyone", None));
    }

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
