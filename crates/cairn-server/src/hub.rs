//! Fan-out of live run events to any number of watchers (SSE, WebSocket,
//! OpenAI streams).

use std::collections::HashMap;
use std::sync::Mutex;

use cairn_core::RunEvent;
use tokio::sync::broadcast;

/// Run id → broadcast channel.
#[derive(Default)]
pub struct EventHub {
    channels: Mutex<HashMap<String, broadcast::Sender<RunEvent>>>,
}

impl EventHub {
    /// Starts watching a run (before it starts, to miss nothing).
    pub fn subscribe(&self, run_id: &str) -> broadcast::Receiver<RunEvent> {
        let mut map = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(run_id.to_string())
            .or_insert_with(|| broadcast::channel(256).0)
            .subscribe()
    }

    /// Sends an event to the run's watchers; the last event closes the channel.
    pub fn publish(&self, run_id: &str, event: RunEvent) {
        let mut map = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = matches!(event, RunEvent::RunFinished { .. });
        if let Some(tx) = map.get(run_id) {
            let _ = tx.send(event);
        }
        if last {
            map.remove(run_id);
        }
    }

    /// Drops a channel nobody listens to any more.
    pub fn forget_if_unwatched(&self, run_id: &str) {
        let mut map = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.get(run_id).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(run_id);
        }
    }
}
