//! Sending ready tool jobs to connected workers whose labels satisfy them
//! (least loaded first, never past a worker's slots), and the upkeep every
//! coordinator runs each heartbeat: lose the jobs whose leases nobody
//! renewed (their worker or coordinator is gone), expire jobs past their
//! deadline.
//! Jobs no connected worker can take stay ready (visible in `cairn cluster
//! jobs`) until a worker comes or their deadline passes.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::cluster::{CoordinatorMessage, ToolJob, ToolJobRecord};
use cairn_core::now_ms;

use crate::coordinator::{Connected, Coordinator, lock};

/// Ready jobs read per pass.
const BATCH: i64 = 256;
/// Ready jobs are looked for at least this often (on PostgreSQL other
/// processes' submissions are announced; on SQLite this is how they are seen).
const POLL: Duration = Duration::from_millis(100);

impl Coordinator {
    /// How long a tool lease lasts without renewal.
    pub(crate) fn tool_lease(&self) -> Duration {
        self.settings.heartbeat() * 4
    }

    /// When a tool lease taken or renewed now runs out (ms).
    pub(crate) fn lease_until(&self) -> i64 {
        now_ms() + self.tool_lease().as_millis() as i64
    }
}

/// The dispatcher and upkeep loop, until the coordinator stops.
pub(crate) async fn run(co: Arc<Coordinator>) {
    let mut upkeep_at = tokio::time::Instant::now();
    loop {
        // Read before looking, so a submission announced meanwhile (on
        // PostgreSQL, by any process) is not slept through.
        let seen = co.store.jobs_seen();
        if tokio::time::Instant::now() >= upkeep_at {
            upkeep(&co).await;
            upkeep_at = tokio::time::Instant::now() + co.settings.heartbeat();
        }
        if let Err(e) = dispatch(&co).await {
            tracing::error!(error = %e, "dispatching tool jobs failed");
        }
        tokio::select! {
            () = co.wake.notified() => {}
            () = co.store.wait_for_jobs(seen, POLL) => {}
            () = co.stop.cancelled() => return,
        }
    }
}

/// Leases are renewed by the heartbeats of the workers running the jobs
/// (see the session); what is left is to lose the ones nobody renews.
async fn upkeep(co: &Arc<Coordinator>) {
    match co.store.expire_tool_jobs(now_ms()).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::warn!(
                jobs = n,
                "tool jobs given up: their worker or coordinator was lost, or no worker took them before their deadline"
            );
            // Their waiters may be on this coordinator.
            co.wake_waiters();
        }
        Err(e) => tracing::error!(error = %e, "could not expire tool jobs"),
    }
}

/// The connected worker that should take `job`: labels satisfied, room
/// left, fewest running.
fn pick<'a>(workers: &'a [Connected], job: &ToolJobRecord) -> Option<&'a Connected> {
    workers
        .iter()
        .filter(|w| w.node.labels.satisfies(&job.job.requires))
        .filter(|w| w.running() < w.slots as usize)
        .min_by_key(|w| w.running())
}

async fn dispatch(co: &Arc<Coordinator>) -> Result<(), cairn_store::StoreError> {
    let workers = co.connected();
    // No room anywhere: reading the ready jobs would be wasted.
    if !workers.iter().any(|w| w.running() < w.slots as usize) {
        return Ok(());
    }
    let ready = co.store.ready_tool_jobs(BATCH).await?;
    for job in ready {
        let Some(worker) = pick(&workers, &job) else {
            continue;
        };
        let until = co.lease_until();
        let Some(attempt) = co
            .store
            .lease_tool_job(&job.job.id, &worker.node.id, &co.id, until)
            .await?
        else {
            // Another coordinator took it.
            continue;
        };
        let hop = crate::delegation::Hop {
            run: &job.job.run_id,
            job: &job.job.id,
            tool: &job.job.tool,
            node: &worker.node.id,
            // The worker must start it within the lease; a token seen later
            // (replayed) is refused.
            deadline_ms: until,
        };
        let delegation = match co.delegator.token(&hop) {
            Ok(t) => t,
            Err(e) => {
                // Unsignable (an id that cannot be named): it would be refused.
                tracing::error!(job = %job.job.id, error = %e, "cannot delegate a job");
                continue;
            }
        };
        lock(&worker.inflight).insert(job.job.id.clone(), attempt);
        let frame = CoordinatorMessage::Run(ToolJob {
            run_id: job.job.run_id.clone(),
            delegation,
            job: job.job.id.clone(),
            attempt,
            tool: job.job.tool.clone(),
            input: job.job.input.clone(),
            workspace: job.job.workspace.clone(),
            sandbox: job.job.sandbox,
            deadline_ms: job.job.deadline_ms,
            traceparent: job.job.traceparent.clone(),
        });
        if worker.tx.send(frame).await.is_err() {
            // The connection is gone; unrenewed, the lease runs out.
            lock(&worker.inflight).remove(&job.job.id);
        }
    }
    Ok(())
}
