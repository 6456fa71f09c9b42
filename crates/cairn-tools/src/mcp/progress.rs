//! Progress notifications, delivered in the order the server sent them.
//!
//! rmcp hands each notification to the client handler on a task of its
//! own, so a call's last progress could reach the watchers after the call's
//! answer (or not at all, once the call stopped listening). Reading them
//! as the transport yields them, before rmcp sees the answer behind them,
//! keeps "progress 4/4" ahead of the result.
//!
//! rmcp picks a request's token only as it sends the request, so a fast
//! server's first progress can arrive before the call has registered for
//! it: such progress is held (a little of it, for a few tokens) and handed
//! over when the call registers.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use rmcp::RoleClient;
use rmcp::model::{JsonRpcMessage, ProgressNotificationParam, ProgressToken, ServerNotification};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;

use crate::Progress;

/// Calls waiting for progress, and progress no call waits for yet.
pub(crate) type Watchers = Arc<Mutex<Board>>;

/// Tokens whose early progress is held; beyond, the oldest is dropped (a
/// server sending progress for tokens nobody asked for fills no memory).
const EARLY_TOKENS: usize = 32;
/// Lines held per token.
const EARLY_LINES: usize = 16;

/// Who listens to which token.
#[derive(Default)]
pub(crate) struct Board {
    watching: HashMap<String, Progress>,
    early: HashMap<String, Vec<String>>,
    /// `early`'s keys, oldest first.
    arrived: VecDeque<String>,
}

impl Board {
    /// `sink` gets the progress of `token` from now on, after whatever
    /// arrived for it before.
    pub fn watch(&mut self, token: String, sink: Progress) {
        if let Some(lines) = self.early.remove(&token) {
            self.arrived.retain(|t| *t != token);
            for line in lines {
                sink.send(&line);
            }
        }
        self.watching.insert(token, sink);
    }

    /// Nobody listens to `token` any more.
    pub fn forget(&mut self, token: &str) {
        self.watching.remove(token);
        if self.early.remove(token).is_some() {
            self.arrived.retain(|t| t != token);
        }
    }

    fn deliver(&mut self, token: String, line: String) {
        if let Some(sink) = self.watching.get(&token) {
            sink.send(&line);
            return;
        }
        if !self.early.contains_key(&token) {
            if self.arrived.len() >= EARLY_TOKENS
                && let Some(oldest) = self.arrived.pop_front()
            {
                self.early.remove(&oldest);
            }
            self.arrived.push_back(token.clone());
        }
        let lines = self.early.entry(token).or_default();
        if lines.len() < EARLY_LINES {
            lines.push(line);
        }
    }
}

/// The map key of a progress token.
pub(crate) fn token_key(token: &ProgressToken) -> String {
    match serde_json::to_value(token) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    }
}

/// A transport that reports progress notifications as they arrive.
pub(crate) struct Ordered<T> {
    inner: T,
    watchers: Watchers,
}

impl<T> Ordered<T> {
    /// Wraps `inner`; progress goes to whoever `watchers` holds at the time.
    pub fn new(inner: T, watchers: Watchers) -> Self {
        Ordered { inner, watchers }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Ordered<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await;
        if let Some(JsonRpcMessage::Notification(n)) = &message
            && let ServerNotification::ProgressNotification(p) = &n.notification
        {
            report(&self.watchers, &p.params);
        }
        message
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

fn report(watchers: &Watchers, params: &ProgressNotificationParam) {
    let total = params.total.map(|t| format!("/{t}")).unwrap_or_default();
    let message = params.message.as_deref().unwrap_or("");
    let line = format!("progress {}{total} {message}\n", params.progress);
    match watchers.lock() {
        Ok(mut board) => board.deliver(token_key(&params.progress_token), line),
        Err(_) => tracing::debug!("progress board poisoned; a progress line is dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut tokio::sync::mpsc::Receiver<String>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn progress_before_the_call_registers_is_handed_over_in_order() {
        let mut board = Board::default();
        board.deliver("7".into(), "one".into());
        board.deliver("7".into(), "two".into());
        let (sink, mut rx) = Progress::channel();
        board.watch("7".into(), sink);
        board.deliver("7".into(), "three".into());
        assert_eq!(drain(&mut rx), ["one", "two", "three"]);
        board.forget("7");
        board.deliver("7".into(), "late".into());
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn progress_for_tokens_nobody_asked_for_stays_bounded() {
        let mut board = Board::default();
        for t in 0..1_000 {
            for l in 0..100 {
                board.deliver(t.to_string(), format!("{l}"));
            }
        }
        assert_eq!(board.early.len(), EARLY_TOKENS);
        assert_eq!(board.arrived.len(), EARLY_TOKENS);
        assert!(board.early.values().all(|l| l.len() == EARLY_LINES));
        // The newest tokens are the ones kept.
        assert!(board.early.contains_key("999") && !board.early.contains_key("0"));
    }
}
