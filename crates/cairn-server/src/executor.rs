//! Drives queued runs: each executor claims a run's job, drives it with the
//! runtime, publishes its events, and goes back for more. A panic while
//! driving fails that run only.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::{RunEvent, RunStatus, now_ms};
use cairn_store::{Found, Job, kinds};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// How often the server adds new messages to the episodic index. Not per
/// run: indexing beside running steps slowed them by a third in the
/// agent-loop benchmark. Searches catch up on whatever is left.
const EPISODIC_INDEX_EVERY: Duration = Duration::from_secs(60);

/// Starts `n` executors, the lease-recovery loop, the scheduler and the
/// episodic indexer.
pub fn start(state: Arc<AppState>, n: usize) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let state = state.clone();
        set.spawn(async move { executor_loop(state).await });
    }
    let recovery = state.clone();
    set.spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(recovery_every(recovery.rt.job_lease_ms())) => {}
                _ = recovery.shutdown.cancelled() => break,
            }
            match recovery.tables.queue.recover_leases().await {
                Ok(n) if n > 0 => recovery.wake.notify_waiters(),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "lease recovery failed"),
            }
        }
    });
    crate::scheduler::start(state.clone(), &mut set);
    let batches = state.clone();
    set.spawn(async move { batch_loop(batches).await });
    let indexer = state;
    set.spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(EPISODIC_INDEX_EVERY) => {}
                _ = indexer.shutdown.cancelled() => break,
            }
            if let Err(e) = indexer.tables.memories.index_messages().await {
                tracing::warn!(error = %e, "episodic indexing failed; searches will catch up");
            }
        }
    });
    set
}

/// How often the batch driver looks at its batches.
const BATCH_EVERY: Duration = Duration::from_millis(200);

/// Feeds batches (collect ended runs, start pending items) while this
/// process holds the `batch` leader row; any coordinator takes over within
/// a few passes of the holder's death.
async fn batch_loop(state: Arc<AppState>) {
    let me = cairn_store::this_process();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(BATCH_EVERY) => {}
            _ = state.shutdown.cancelled() => break,
        }
        let ttl = (BATCH_EVERY * 10).as_millis() as i64;
        match state.tables.batches.try_lead("batch", me, ttl).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not check the batch leader");
                continue;
            }
        }
        match state.rt.drive_batches().await {
            Ok(n) if n > 0 => state.wake.notify_waiters(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "driving batches failed"),
        }
    }
}

/// How often expired leases are looked for: a sixth of a lease, so a run
/// whose process died resumes within a moment of its lease running out
/// (and never more than 5 s after).
fn recovery_every(lease_ms: i64) -> Duration {
    Duration::from_millis((lease_ms / 6).clamp(100, 5_000) as u64)
}

/// After shutdown: waits up to `grace` for running steps, then leaves the
/// rest (their leases lapse; the next start resumes them from the journal).
pub async fn drain(mut set: JoinSet<()>, grace: Duration) {
    let all = async { while set.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            grace_s = grace.as_secs(),
            "runs still working at shutdown will resume at the next start"
        );
    }
}

async fn executor_loop(state: Arc<AppState>) {
    loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        // Registered before claiming, so work queued meanwhile wakes us.
        let woken = state.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let seen = state.tables.queue.jobs_seen();
        match state
            .tables
            .queue
            .claim_job(&[kinds::ADVANCE_RUN], state.rt.job_lease_ms())
            .await
        {
            Ok(Some(job)) => drive(&state, job).await,
            Ok(None) => {
                tokio::select! {
                    _ = woken => {}
                    _ = state.tables.queue.wait_for_jobs(seen, Duration::from_millis(500)) => {}
                    _ = state.shutdown.cancelled() => return,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming a job failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn drive(state: &Arc<AppState>, job: Job) {
    let Some(run_id) = job.run_id.clone() else {
        // Nothing to drive: a job of this kind always names its run.
        tracing::warn!(job = %job.id, "a run job without a run; dropping it");
        finish_job(state, &job).await;
        return;
    };
    let task_state = state.clone();
    let task_job = job.clone();
    let task_run = run_id.clone();
    let handle = tokio::spawn(async move {
        let run = task_state.tables.runs.get_run(&task_run).await?;
        let hub_state = task_state.clone();
        let events = move |e: RunEvent| hub_state.hub.publish(&task_run, e);
        // A store error is not "no such agent": the job is left to its
        // lease and the run is tried again.
        match task_state.agent(&run.agent).await.found()? {
            Some(agent) => {
                let cancel = CancellationToken::new();
                task_state.rt.drive(task_job, agent, &events, cancel).await
            }
            None => {
                let reason = format!("agent {:?} is not available: it does not exist", run.agent);
                task_state
                    .rt
                    .fail_run(&task_job, &run.id, &reason, &events)
                    .await
            }
        }
    });
    match handle.await {
        Ok(Ok(run)) if run.status == RunStatus::Queued => tell_cooling_down(state, &run).await,
        Ok(Ok(run)) => {
            state
                .cooldown_told
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&run.id);
        }
        Ok(Err(e)) => tracing::error!(run = %run_id, error = %e, "driving the run failed"),
        Err(panic) => {
            let reason = format!("internal error while driving the run: {panic}");
            let events = |e: RunEvent| state.hub.publish(&run_id, e);
            if let Err(e) = state.rt.fail_run(&job, &run_id, &reason, &events).await {
                tracing::error!(run = %run_id, error = %e,
                    "cannot record the run as failed; it is driven again when its job's lease lapses");
            }
        }
    }
    state.run_done.notify_waiters();
}

/// A run waiting for a rate-limited provider: the person who asked on a
/// channel is told until when, rather than left wondering.
async fn tell_cooling_down(state: &AppState, run: &cairn_core::RunRecord) {
    let first_time = state
        .cooldown_told
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(run.id.clone());
    if !first_time {
        return;
    }
    let msg = match state.tables.channels.inbound_for_run(&run.id).await {
        Ok(Some(msg)) => msg,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(run = %run.id, error = %e, "cannot read the message that started the run; no cooldown notice");
            return;
        }
    };
    let until = match state
        .tables
        .queue
        .provider_cooldown(&run.provider, now_ms())
        .await
    {
        Ok(Some((until, _))) => until,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(provider = %run.provider, error = %e, "cannot read the provider's cooldown; no cooldown notice");
            return;
        }
    };
    let notice = cairn_store::NewOutbound {
        channel: msg.channel,
        chat_id: msg.chat_id,
        thread: msg.thread,
        parts: vec![format!(
            "I'm being rate-limited by my model provider ({}) until {} UTC; I'll answer then.",
            run.provider,
            cairn_runtime::iso(until)
                .replace('T', " ")
                .trim_end_matches('Z')
        )],
        run_id: None,
    };
    match state.tables.channels.enqueue_outbound(&notice).await {
        Ok(()) => state.outbox.notify_waiters(),
        Err(e) => tracing::warn!(error = %e, "cannot enqueue a cooldown notice"),
    }
}

/// Completes a job, logging a fenced or failed completion.
async fn finish_job(state: &AppState, job: &Job) {
    match state.tables.queue.complete_job(job).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(job = %job.id, attempt = job.attempt,
            "job was taken over by a newer claim; this completion is ignored"),
        Err(e) => tracing::error!(job = %job.id, error = %e,
            "cannot complete the job; it runs again when its lease expires"),
    }
}
