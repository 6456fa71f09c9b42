//! Notices to an agent's owner on their channel (`agents.<name>.owner`):
//! what they would otherwise not know happened — schedules that missed
//! their time, runs the watchdog stopped. Queued in the durable outbox.

use cairn_core::AgentSpec;
use cairn_store::NewOutbound;

use crate::Runtime;

impl Runtime {
    /// Queues `text` for `agent`'s owner, if it has one. A failure is
    /// logged: a notice is never worth failing the work it is about.
    pub async fn notify_owner(&self, agent: &AgentSpec, text: &str) {
        let Some((channel, chat)) = agent.owner.as_deref().and_then(|o| o.split_once(':')) else {
            return;
        };
        let out = NewOutbound {
            channel: channel.to_string(),
            chat_id: chat.to_string(),
            thread: None,
            parts: vec![format!("[{}] {text}", agent.name)],
            run_id: None,
        };
        if let Err(e) = self.store.enqueue_outbound(&out).await {
            tracing::warn!(agent = %agent.name, error = %e, "cannot queue a notice for the owner");
        }
    }
}
