//! The durable inbox and outbox of channels. Accepting an inbound message
//! is one transaction (inbox row, session, run and its job); only after it
//! commits is the platform acknowledged, so a crash loses nothing and a
//! redelivery (same platform id) changes nothing. Replies are enqueued once
//! per run and retried until delivered or dead-lettered.

use async_trait::async_trait;
use cairn_core::RunRecord;
use cairn_core::channel::InboundMessage;
use cairn_core::channel::OutboxItem;

use crate::StoreError;

/// What became of an inbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// New: a run was queued for it.
    Queued {
        /// The run.
        run_id: String,
    },
    /// New, from someone not allowed: a refusal was queued, no run.
    Refused,
    /// Seen before (the platform redelivered it): nothing done.
    Duplicate,
}

/// A reply to send.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    /// Channel.
    pub channel: String,
    /// Chat.
    pub chat_id: String,
    /// Thread.
    pub thread: Option<String>,
    /// Pieces, sent in order (a platform's length limit splits a reply).
    pub parts: Vec<String>,
    /// The run it answers.
    pub run_id: Option<String>,
}

/// A finished run that a channel message started and that has no reply yet.
#[derive(Debug, Clone)]
pub struct AwaitingReply {
    /// The message that started it.
    pub message: InboundMessage,
    /// The run, finished.
    pub run: RunRecord,
}

/// ChannelStore: see the module documentation.
#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// Records an inbound message: with `run` (allowed sender; it names the
    /// person it works for) the run is queued in the same
    /// transaction; without, `refusal` is queued as the
    /// reply. A message already recorded is a `Duplicate`.
    async fn accept_inbound(
        &self,
        msg: &InboundMessage,
        run: Option<&RunRecord>,
        refusal: Option<&str>,
    ) -> Result<Accepted, StoreError>;

    /// Messages counted from strangers on `channel`, by sender.
    async fn stranger_counts(&self, channel: &str) -> Result<Vec<(String, i64)>, StoreError>;

    /// Finished runs started by channel messages whose reply is not yet
    /// enqueued.
    async fn awaiting_replies(&self, limit: i64) -> Result<Vec<AwaitingReply>, StoreError>;

    /// Enqueues the reply to an inbound message and marks it replied, in
    /// one transaction (so a reply is enqueued once).
    async fn enqueue_reply(
        &self,
        msg: &InboundMessage,
        out: &NewOutbound,
    ) -> Result<bool, StoreError>;

    /// Enqueues a message that answers no inbound one (a notice).
    async fn enqueue_outbound(&self, out: &NewOutbound) -> Result<(), StoreError>;

    /// Pending items of `channel` due by `now`, oldest first; per chat, an
    /// item is due only after the earlier ones of that chat were sent (the
    /// parts of a reply arrive in order).
    async fn due_outbound(
        &self,
        channel: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<OutboxItem>, StoreError>;

    /// Every outbox item (of a channel), newest first.
    async fn list_outbound(
        &self,
        channel: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxItem>, StoreError>;

    /// Records a delivery attempt: sent, retried at `retry_at`, or dead.
    async fn outbound_attempt(
        &self,
        id: &str,
        result: Result<(), (String, Option<i64>)>,
    ) -> Result<(), StoreError>;

    /// A polling channel's saved position.
    async fn channel_cursor(&self, channel: &str) -> Result<Option<String>, StoreError>;

    /// Saves a polling channel's position.
    async fn set_channel_cursor(&self, channel: &str, cursor: &str) -> Result<(), StoreError>;

    /// The distinct (chat, thread) pairs of `channel` whose messages are
    /// kept: who used a session id before ids were injective.
    async fn inbound_conversations(
        &self,
        channel: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError>;

    /// The channel message that started `run_id`, if one did.
    async fn inbound_for_run(&self, run_id: &str) -> Result<Option<InboundMessage>, StoreError>;

    /// Folds channel messages that arrived for `lease`'s session while its
    /// run works into that run — only those of the person whose message
    /// started it (same channel and sender): a turn acts for one person, so
    /// in a group chat another member's message waits for a turn of its
    /// own. Their queued runs are closed (answered together), their jobs
    /// removed, their text appended to the session — one transaction, under
    /// the session lease. Returns the texts, oldest first; their senders get
    /// the running turn's reply.
    async fn absorb_queued_messages(
        &self,
        lease: &mut crate::SessionLease,
    ) -> Result<Vec<String>, StoreError>;

    /// Makes a channel message wait for `new_run`'s reply instead of
    /// `old_run`'s (a run started again).
    async fn repoint_inbound(&self, old_run: &str, new_run: &str) -> Result<(), StoreError>;

    /// Outbox items by status (`pending`, `sent`, `dead`), for `cairn status`.
    async fn outbound_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Forgets delivered replies and answered messages received before
    /// `before` (ms); returns how many rows went. Platforms redeliver within
    /// minutes, so old inbox rows are no longer needed to de-duplicate.
    async fn prune_channel_history(&self, before: i64) -> Result<u64, StoreError>;

    /// How many inbound messages a channel has kept (a stranger's is only
    /// counted, in `stranger_counts`).
    async fn inbound_count(&self, channel: &str) -> Result<i64, StoreError>;
}

/// How often a stranger is told no, however much they send.
pub(crate) const STRANGER_TOLD_EVERY_MS: i64 = 3_600_000;

/// An inbox row: channel, platform_id, chat_id, thread, user_id, text.
pub(crate) type InboundRow = (String, String, String, Option<String>, String, String);

/// An inbound message from its row.
pub(crate) fn inbound_from_row(r: InboundRow) -> InboundMessage {
    InboundMessage {
        channel: r.0,
        platform_id: r.1,
        chat_id: r.2,
        thread: r.3,
        user_id: r.4,
        text: r.5,
    }
}

/// The outbox columns, in [`OutboxRow`] order.
macro_rules! outbox_columns {
    () => {
        "id, channel, chat_id, thread, text, run_id, status, attempts, next_at, last_error"
    };
}
pub(crate) use outbox_columns;

/// An outbox row, as `outbox_columns!` selects it.
pub(crate) type OutboxRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    i64,
    i64,
    Option<String>,
);

/// An outbox item from its row.
pub(crate) fn outbox_from_row(r: OutboxRow) -> OutboxItem {
    OutboxItem {
        id: r.0,
        channel: r.1,
        chat_id: r.2,
        thread: r.3,
        text: r.4,
        run_id: r.5,
        status: r.6,
        attempts: r.7,
        next_at: r.8,
        last_error: r.9,
    }
}

/// The refusal a stranger is sent.
pub(crate) fn refusal_for(msg: &InboundMessage, refusal: Option<&str>) -> NewOutbound {
    NewOutbound {
        channel: msg.channel.clone(),
        chat_id: msg.chat_id.clone(),
        thread: msg.thread.clone(),
        parts: vec![
            refusal
                .unwrap_or("Sorry, I only talk to people I know.")
                .to_string(),
        ],
        run_id: None,
    }
}

/// What a run absorbed into another is left saying.
pub(crate) fn absorbed_note(into_run: &str) -> String {
    format!("(answered together with run {into_run})")
}
