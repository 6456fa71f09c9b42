//! The watchdog: finds runs that made no progress (no journal entry) for
//! too long and acts. A tool call in flight gets its own timeout (plus a
//! minute) before it counts as stuck, so a long build asked for with a long
//! timeout is left alone. The action is cancellation: the run's tools are
//! killed (their whole process group), the run ends as cancelled with the
//! watchdog's reason, and its session is free for the next message. Runs
//! driven by another live process are only reported.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::now_ms;
use cairn_runtime::Driven;
use cairn_store::{RunProgress, StoreError};
use tokio::task::JoinSet;

use crate::AppState;

/// Slack given to a tool call beyond its own timeout.
const TOOL_SLACK_MS: i64 = 60_000;

/// What the watchdog does with a stuck run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchdogAction {
    /// Cancel it.
    #[default]
    Cancel,
    /// Cancel it and start the turn again, once.
    Retry,
}

impl WatchdogAction {
    /// `cancel` or `retry`.
    pub fn parse(s: &str) -> Option<WatchdogAction> {
        match s {
            "cancel" => Some(WatchdogAction::Cancel),
            "retry" => Some(WatchdogAction::Retry),
            _ => None,
        }
    }
}

/// Starts the watchdog loop in `set` (not at all when `stuck` is zero).
pub fn start(state: Arc<AppState>, stuck: Duration, action: WatchdogAction, set: &mut JoinSet<()>) {
    if stuck.is_zero() {
        return;
    }
    // Runs started by a retry are not retried again.
    let retries: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
    let every = (stuck / 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
    set.spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = state.shutdown.cancelled() => break,
            }
            match state.tables.runs.running_progress().await {
                Ok(runs) => {
                    for r in runs {
                        check(&state, &r, stuck, action, &retries).await;
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
        .filter(|c| c.name == "exec")
        .filter_map(|c| cairn_tools::exec_timeout(&c.input))
        .map(|t| t.as_millis() as i64 + TOOL_SLACK_MS)
        .max()
        .unwrap_or(0);
    (stuck.as_millis() as i64).max(tool_limit)
}

async fn check(
    state: &Arc<AppState>,
    r: &RunProgress,
    stuck: Duration,
    action: WatchdogAction,
    retries: &std::sync::Mutex<std::collections::HashSet<String>>,
) {
    let idle = now_ms() - r.last_progress;
    if idle <= allowance(r, stuck) {
        return;
    }
    match state.rt.driven(&r.run_id) {
        Driven::Here => {}
        Driven::Stopping => return,
        Driven::Elsewhere => {
            tracing::warn!(run = %r.run_id, idle_s = idle / 1000, "watchdog: run without progress is driven by another process");
            return;
        }
    }
    let is_retry = retries
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&r.run_id);
    let retried = match action {
        WatchdogAction::Retry if !is_retry => retry(state, &r.run_id).await,
        _ => None,
    };
    if let Some(new_run) = &retried {
        retries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(new_run.clone());
    }
    let reason = format!(
        "watchdog: no progress for {} s; cancelled (its tools were killed){}",
        idle / 1000,
        match &retried {
            Some(id) => format!(" and started again as run {id}"),
            None => format!("; session {} is free", r.session_id),
        }
    );
    tracing::warn!(run = %r.run_id, "{reason}");
    // The runtime ends the run with this reason in its journal.
    state.rt.stop_stuck(&r.run_id, &reason);
    match owner_notice(state, &r.run_id, &reason).await {
        Ok(()) => state.outbox.notify_waiters(),
        Err(e) => {
            tracing::warn!(run = %r.run_id, error = %e, "the owner could not be told the watchdog stopped a run");
        }
    }
}

/// Queues the stuck run's turn again in its session (it runs once the
/// stuck one has stopped); a channel message it answered now waits for the
/// new run's reply instead. Returns the new run's id.
async fn retry(state: &Arc<AppState>, run_id: &str) -> Option<String> {
    let run = match state.tables.runs.get_run(run_id).await {
        Ok(run) => run,
        Err(e) => {
            tracing::warn!(run = %run_id, error = %e, "watchdog: cannot read the run to retry it");
            return None;
        }
    };
    let agent = match state.agent(&run.agent).await {
        Ok(agent) => agent,
        Err(e) => {
            tracing::warn!(run = %run_id, agent = %run.agent, error = %e, "watchdog: the run's agent is not available");
            return None;
        }
    };
    let req = cairn_runtime::TurnRequest {
        agent,
        session_id: Some(run.session_id.clone()),
        input: run.input.clone(),
        user_id: run.user_id.clone(),
    };
    match state.rt.submit(&req).await {
        Ok((new_run, _job)) => {
            if let Err(e) = state
                .tables
                .channels
                .repoint_inbound(run_id, &new_run.id)
                .await
            {
                tracing::warn!(error = %e, "watchdog: the retry's reply will not reach the channel");
            }
            state.wake.notify_waiters();
            Some(new_run.id)
        }
        Err(e) => {
            tracing::warn!(run = %run_id, error = %e, "watchdog: cannot start the run again");
            None
        }
    }
}

/// Tells the agent's owner (when it has one) that the watchdog stopped a
/// run; a store error is returned, not taken for "no such run".
async fn owner_notice(state: &AppState, run_id: &str, reason: &str) -> Result<(), StoreError> {
    let run = state.tables.runs.get_run(run_id).await?;
    let agent = state.agent(&run.agent).await?;
    let text = format!(
        "run {} (\"{}\"): {reason}",
        run.id,
        run.input.chars().take(60).collect::<String>()
    );
    state.rt.notify_owner(&agent, &text).await;
    Ok(())
}
