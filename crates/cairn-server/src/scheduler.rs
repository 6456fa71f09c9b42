//! The scheduler loop of a server: every second, due schedules become
//! queued runs (exactly once, however many servers share the store), and
//! the executors are woken for them. A heartbeat row tells agents that a
//! scheduler is running.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{AgentSpec, now_ms};
use cairn_runtime::AgentSource;
use tokio::task::JoinSet;

use crate::AppState;

/// How often due schedules are looked for.
const TICK: Duration = Duration::from_secs(1);
/// How often the loop says it is alive.
const HEARTBEAT_EVERY_MS: i64 = 10_000;

#[async_trait]
impl AgentSource for AppState {
    async fn agent(&self, name: &str) -> Result<AgentSpec, String> {
        AppState::agent(self, name).await.map_err(|e| e.to_string())
    }
}

/// Starts the loop in `set`.
pub fn start(state: Arc<AppState>, set: &mut JoinSet<()>) {
    set.spawn(async move {
        let owner = cairn_store::this_process();
        let mut last_beat = 0;
        loop {
            let now = now_ms();
            if now - last_beat >= HEARTBEAT_EVERY_MS {
                match state.rt.store.scheduler_heartbeat(owner, now).await {
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
