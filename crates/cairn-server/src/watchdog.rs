//! The watchdog: finds runs that made no progress (no journal entry) for
//! too long and acts. A tool call in flight gets its own timeout (plus a
//! minute) before it counts as stuck, so a long build asked for with a long
//! timeout is left alone. The action is cancellation: the run's tools are
//! killed (their whole process group), the run ends as cancelled with the
//! watchdog's reason, and its session is free for the next message. Runs
//! driven by another live process are only reported.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::{RunStatus, now_ms};
use cairn_store::RunProgress;
use tokio::task::JoinSet;

use crate::AppState;

/// Slack given to a tool call beyond its own timeout.
const TOOL_SLACK_MS: i64 = 60_000;

/// Starts the watchdog loop in `set` (not at all when `stuck` is zero).
pub fn start(state: Arc<AppState>, stuck: Duration, set: &mut JoinSet<()>) {
    if stuck.is_zero() {
        return;
    }
    let every = (stuck / 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
    set.spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = state.shutdown.cancelled() => break,
            }
            match state.rt.store.running_progress().await {
                Ok(runs) => {
                    for r in runs {
                        check(&state, &r, stuck).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watchdog: cannot read runs"),
            }
        }
    });
}

/// How long `r` may go without progress.
fn allowance(r: &RunProgress, stuck: Duration) -> i64 {
    let tool_limit = r
        .in_flight
        .iter()
        .filter(|c| c["name"] == "exec")
        .map(|c| c["input"]["timeout_s"].as_i64().unwrap_or(120) * 1000 + TOOL_SLACK_MS)
        .max()
        .unwrap_or(0);
    (stuck.as_millis() as i64).max(tool_limit)
}

async fn check(state: &Arc<AppState>, r: &RunProgress, stuck: Duration) {
    let idle = now_ms() - r.last_progress;
    if idle <= allowance(r, stuck) {
        return;
    }
    let token = state
        .cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&r.run_id)
        .cloned();
    let Some(token) = token else {
        tracing::warn!(run = %r.run_id, idle_s = idle / 1000, "watchdog: run without progress is driven by another process");
        return;
    };
    if token.is_cancelled() {
        return;
    }
    let reason = format!(
        "watchdog: no progress for {} s; cancelled (its tools were killed, session {} is free)",
        idle / 1000,
        r.session_id
    );
    tracing::warn!(run = %r.run_id, "{reason}");
    token.cancel();
    // Say why on the run once it has stopped.
    let state = state.clone();
    let run_id = r.run_id.clone();
    tokio::spawn(async move {
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match state.rt.store.get_run(&run_id).await {
                Ok(mut run) if run.status.is_terminal() => {
                    if run.status == RunStatus::Cancelled {
                        run.error = Some(reason);
                        if let Err(e) = state.rt.store.update_run(&run).await {
                            tracing::warn!(run = %run_id, error = %e, "watchdog: cannot record the reason");
                        }
                    }
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(run = %run_id, error = %e, "watchdog: cannot read the run");
                    return;
                }
            }
        }
    });
}
