//! Progress notifications, delivered in the order the server sent them.
//!
//! rmcp hands each notification to the client handler on a task of its
//! own, so a call's last progress could reach the watchers after the call's
//! answer (or not at all, once the call stopped listening). Reading them
//! as the transport yields them, before rmcp sees the answer behind them,
//! keeps "progress 4/4" ahead of the result.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rmcp::RoleClient;
use rmcp::model::{JsonRpcMessage, ProgressNotificationParam, ProgressToken, ServerNotification};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;

use crate::Progress;

/// Calls waiting for progress, by token key.
pub(crate) type Watchers = Arc<Mutex<HashMap<String, Progress>>>;

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
    let key = token_key(&params.progress_token);
    let sink = match watchers.lock() {
        Ok(map) => map.get(&key).cloned(),
        Err(_) => None,
    };
    if let Some(sink) = sink {
        let total = params.total.map(|t| format!("/{t}")).unwrap_or_default();
        let message = params.message.as_deref().unwrap_or("");
        sink.send(&format!("progress {}{total} {message}\n", params.progress));
    }
}
