//! Sending ready tool jobs to connected workers whose labels satisfy them
//! (least loaded first, never past a worker's slots), and the upkeep every
//! coordinator runs each heartbeat: lose the jobs whose leases nobody
//! renewed (their worker or coordinator is gone), expire jobs past their
//! deadline.
//! Jobs no connected worker can take stay ready (visible in `cairn cluster
//! jobs`) until a worker comes or their deadline passes.
//!
//! A call in a named workspace goes where the run's earlier calls in that
//! workspace went (the files it expects are there): it waits for that node
//! while the node is up, here or on another coordinator, and goes to any
//! fitting worker once the node is down.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::cluster::{CoordinatorMessage, Labels, NewToolJob, ToolJob, ToolJobRecord};
use cairn_core::now_ms;
use cairn_store::{JobLease, ReadyToolJob, StoreError};

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

/// Where a ready job goes in this pass.
enum Choice<'a> {
    /// To this worker, connected here.
    To(&'a Connected),
    /// Nowhere yet (no room, or its workspace's node is elsewhere).
    Wait,
}

/// One dispatch pass's memory: where each run's named workspaces went,
/// and which nodes are up on other coordinators (read once, if needed).
#[derive(Default)]
struct Pass {
    homes: HashMap<(String, String), String>,
    up: Option<HashSet<String>>,
}

impl Pass {
    fn key(job: &ToolJobRecord) -> Option<(String, String)> {
        let ws = job.job.workspace.clone()?;
        Some((job.job.run_id.clone(), ws))
    }

    async fn choose<'a>(
        &mut self,
        co: &Coordinator,
        workers: &'a [Connected],
        ready: &ReadyToolJob,
    ) -> Result<Choice<'a>, cairn_store::StoreError> {
        let home = Self::key(&ready.job)
            .and_then(|k| self.homes.get(&k).cloned())
            .or_else(|| ready.affinity.clone());
        let Some(node) = home else {
            return Ok(pick(workers, &ready.job.job.requires).map_or(Choice::Wait, Choice::To));
        };
        if let Some(w) = workers.iter().find(|w| w.node.id == node) {
            let room = w.running() < w.slots as usize;
            return Ok(if room { Choice::To(w) } else { Choice::Wait });
        }
        if self.up_elsewhere(co).await?.contains(&node) {
            return Ok(Choice::Wait);
        }
        let moved = pick(workers, &ready.job.job.requires);
        if let Some(w) = moved {
            tracing::warn!(job = %ready.job.job.id, from = %node, to = %w.node.id,
                "the node holding this run's workspace is down: the call goes to another worker, where the workspace starts empty");
        }
        Ok(moved.map_or(Choice::Wait, Choice::To))
    }

    /// Nodes connected to a coordinator and heard from within four beats.
    async fn up_elsewhere(
        &mut self,
        co: &Coordinator,
    ) -> Result<&HashSet<String>, cairn_store::StoreError> {
        if self.up.is_none() {
            let since = now_ms() - (co.settings.heartbeat() * 4).as_millis() as i64;
            let up = co
                .store
                .list_nodes()
                .await?
                .into_iter()
                .filter(|n| n.coordinator.is_some() && n.revoked_at.is_none())
                .filter(|n| n.last_seen.is_some_and(|t| t >= since))
                .map(|n| n.id)
                .collect();
            self.up = Some(up);
        }
        Ok(self.up.get_or_insert_default())
    }

    fn placed(&mut self, job: &ToolJobRecord, node: &str) {
        if let Some(k) = Self::key(job) {
            self.homes.insert(k, node.to_string());
        }
    }
}

/// The connected worker that should take `job`: labels satisfied, room
/// left, fewest running.
fn pick<'a>(workers: &'a [Connected], requires: &Labels) -> Option<&'a Connected> {
    workers
        .iter()
        .filter(|w| w.node.labels.satisfies(requires))
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
    let mut pass = Pass::default();
    for r in ready {
        let worker = match pass.choose(co, &workers, &r).await? {
            Choice::To(w) => w,
            Choice::Wait => continue,
        };
        let job = r.job;
        let until = co.lease_until();
        let Some(attempt) = co
            .store
            .lease_tool_job(&job.job.id, &worker.node.id, &co.id, until)
            .await?
        else {
            // Another coordinator took it.
            continue;
        };
        pass.placed(&job, &worker.node.id);
        co.note_home(&job.job, &worker.node.id);
        co.send(worker, &job, attempt, until).await;
    }
    Ok(())
}

/// Runs' named workspaces remembered, beyond which the memory starts over.
const HOMES_KEPT: usize = 10_000;

impl Coordinator {
    /// Sends attempt `attempt` of `job`, leased until `until`, to `worker`.
    async fn send(&self, worker: &Connected, job: &ToolJobRecord, attempt: i64, until: i64) {
        let hop = crate::delegation::Hop {
            run: &job.job.run_id,
            job: &job.job.id,
            tool: &job.job.tool,
            node: &worker.node.id,
            // The worker must start it within the lease; a token seen later
            // (replayed) is refused.
            deadline_ms: until,
        };
        let delegation = match self.delegator.token(&hop) {
            Ok(t) => t,
            Err(e) => {
                // Unsignable (an id that cannot be named): it would be
                // refused. Unsent, its lease runs out.
                tracing::error!(job = %job.job.id, error = %e, "cannot delegate a job");
                lock(&worker.inflight).remove(&job.job.id);
                return;
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

    /// Remembers where `job`'s named workspace went for its run.
    pub(crate) fn note_home(&self, job: &NewToolJob, node: &str) {
        let Some(ws) = &job.workspace else { return };
        let mut homes = lock(&self.homes);
        if homes.len() >= HOMES_KEPT {
            homes.clear();
        }
        homes.insert((job.run_id.clone(), ws.clone()), node.to_string());
    }

    /// Submits `job` already leased to a worker connected here with room,
    /// and sends it: one commit on the call's path where submitting ready
    /// takes three and a dispatch pass. `None`, with nothing written, when
    /// no worker here fits at once, the job exists (a resumed run) or its
    /// named workspace's node is unknown here or elsewhere (the store
    /// checks): submit it ready then. A workspace's first call goes
    /// through the dispatcher, so parallel first calls cannot split it.
    pub(crate) async fn submit_placed(
        &self,
        job: &NewToolJob,
    ) -> Result<Option<ToolJobRecord>, StoreError> {
        let workers = self.connected();
        let worker = match &job.workspace {
            None => pick(&workers, &job.requires),
            Some(ws) => {
                let home = lock(&self.homes)
                    .get(&(job.run_id.clone(), ws.clone()))
                    .cloned();
                let Some(home) = home else { return Ok(None) };
                workers
                    .iter()
                    .find(|w| w.node.id == home && w.node.labels.satisfies(&job.requires))
            }
        };
        let Some(worker) = worker else {
            return Ok(None);
        };
        {
            let mut inflight = lock(&worker.inflight);
            // Running there already (a resumed run's call), or full since
            // it was picked: the dispatcher decides.
            if inflight.contains_key(&job.id) || inflight.len() >= worker.slots as usize {
                return Ok(None);
            }
            // The slot is held while the row is written.
            inflight.insert(job.id.clone(), 1);
        }
        let until = self.lease_until();
        let lease = JobLease {
            node: &worker.node.id,
            owner: &self.id,
            until,
        };
        match self.store.submit_leased_tool_job(job, &lease).await {
            Ok(Some(record)) => {
                self.send(worker, &record, 1, until).await;
                Ok(Some(record))
            }
            other => {
                lock(&worker.inflight).remove(&job.id);
                other
            }
        }
    }
}
