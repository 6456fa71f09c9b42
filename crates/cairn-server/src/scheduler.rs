//! The scheduler loop of a server: every second, due schedules become
//! queued runs (exactly once, however many servers share the store), and
//! the executors are woken for them. A heartbeat row tells agents that a
//! scheduler is running.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{AgentSpec, now_ms};
use cairn_runtime::AgentSource;
use cairn_store::{Found, StoreError};
use tokio::task::JoinSet;

use crate::AppState;

/// How often due schedules are looked for.
const TICK: Duration = Duration::from_secs(1);
/// How often old records are pruned.
const PRUNE_EVERY_MS: i64 = 3_600_000;
/// How long fire records are kept (what `cairn schedule runs` shows).
const KEEP_FIRES_MS: i64 = 90 * 86_400_000;
/// How long delivered channel messages are kept.
const KEEP_CHANNEL_MS: i64 = 30 * 86_400_000;

/// Forgets old fire records and delivered channel messages, so an
/// every-minute schedule or a busy chat does not grow the file forever.
async fn prune(state: &AppState, now: i64) {
    match state
        .tables
        .schedules
        .prune_schedule_fires(now - KEEP_FIRES_MS)
        .await
    {
        Ok(n) if n > 0 => tracing::info!(removed = n, "pruned fire records older than 90 days"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot prune fire records"),
    }
    match state
        .tables
        .channels
        .prune_channel_history(now - KEEP_CHANNEL_MS)
        .await
    {
        Ok(n) if n > 0 => tracing::info!(removed = n, "pruned channel messages older than 30 days"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot prune channel messages"),
    }
}

/// How often the loop says it is alive.
const HEARTBEAT_EVERY_MS: i64 = 10_000;

#[async_trait]
impl AgentSource for AppState {
    async fn agent(&self, name: &str) -> Result<Option<AgentSpec>, StoreError> {
        AppState::agent(self, name).await.found()
    }
}

/// Starts the loop in `set`.
pub fn start(state: Arc<AppState>, set: &mut JoinSet<()>) {
    set.spawn(async move {
        let owner = cairn_store::this_process();
        let mut last_beat = 0;
        let mut last_prune = 0;
        loop {
            let now = now_ms();
            if now - last_prune >= PRUNE_EVERY_MS {
                last_prune = now;
                prune(&state, now).await;
            }
            if now - last_beat >= HEARTBEAT_EVERY_MS {
                match state.tables.schedules.scheduler_heartbeat(owner, now).await {
                    Ok(()) => last_beat = now,
                    Err(e) => tracing::warn!(error = %e, "scheduler heartbeat failed"),
                }
            }
            match state.rt.scheduler_tick(now, state.as_ref()).await {
                Ok(r) if !r.fired.is_empty() => state.wake.notify_waiters(),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler tick failed; trying again"),
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = state.shutdown.cancelled() => break,
            }
        }
    });
}
