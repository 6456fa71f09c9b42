//! Who may stop a run: the runtime alone. A run driven in this process is
//! registered here with its cancel switch; the server's cancel endpoint,
//! the watchdog and a failed executor ask the runtime ([`Runtime::cancel_run`],
//! [`Runtime::stop_stuck`], [`Runtime::fail_run`]) and every one of those
//! ends the run with its `RunEnd` journal entry, through the same commit as
//! a run that finished by itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cairn_core::{RunRecord, RunStatus};
use cairn_store::Job;
use tokio_util::sync::CancellationToken;

use crate::shared::Events;
use crate::{Runtime, RuntimeError};

/// The runs this process drives, by id.
#[derive(Default)]
pub(crate) struct Drivers {
    runs: Mutex<HashMap<String, Driver>>,
}

#[derive(Clone)]
struct Driver {
    cancel: CancellationToken,
    /// Why it was stopped from outside, when it was (the run's end says so).
    reason: Arc<Mutex<Option<String>>>,
}

/// A run's registration while it is driven here; dropping it (a panic
/// included) unregisters the run.
pub(crate) struct Driving {
    drivers: Arc<Drivers>,
    run_id: String,
    reason: Arc<Mutex<Option<String>>>,
}

impl Driving {
    /// The reason a caller gave when it stopped the run, if one did.
    pub(crate) fn stop_reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        self.drivers
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.run_id);
    }
}

impl Drivers {
    /// Registers `run_id` as driven here under `cancel`.
    pub(crate) fn register(self: &Arc<Self>, run_id: &str, cancel: CancellationToken) -> Driving {
        let reason: Arc<Mutex<Option<String>>> = Arc::default();
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                run_id.to_string(),
                Driver {
                    cancel,
                    reason: reason.clone(),
                },
            );
        Driving {
            drivers: self.clone(),
            run_id: run_id.to_string(),
            reason,
        }
    }

    fn get(&self, run_id: &str) -> Option<Driver> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
            .cloned()
    }

    /// Stops the run's driver here, recording `reason` when given; `false`
    /// when no driver of it runs here.
    fn stop(&self, run_id: &str, reason: Option<&str>) -> bool {
        let Some(driver) = self.get(run_id) else {
            return false;
        };
        if let Some(reason) = reason {
            let mut kept = driver.reason.lock().unwrap_or_else(PoisonError::into_inner);
            kept.get_or_insert_with(|| reason.to_string());
        }
        driver.cancel.cancel();
        true
    }
}

/// What asking a run to stop did.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// Its driver in this process was told: it ends at its next await, its
    /// tools killed.
    Stopping,
    /// No one had started it: it ended as cancelled, journaled.
    Withdrawn(Box<RunRecord>),
    /// Another process drives it and sees the request at its next lease
    /// renewal.
    Requested,
    /// No process holds it: it ended meanwhile or waits to be resumed.
    Unheld,
}

/// Whether a run is driven by this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driven {
    /// Here, and not asked to stop.
    Here,
    /// Here, and already stopping.
    Stopping,
    /// Not by this process.
    Elsewhere,
}

impl Runtime {
    /// Whether `run_id` is driven by this process.
    pub fn driven(&self, run_id: &str) -> Driven {
        match self.drivers.get(run_id) {
            Some(d) if d.cancel.is_cancelled() => Driven::Stopping,
            Some(_) => Driven::Here,
            None => Driven::Elsewhere,
        }
    }

    /// Stops `run_id` wherever it is: its driver here, its queue entry, or
    /// (held by another process on the same database) a request that
    /// process sees.
    pub async fn cancel_run(&self, run_id: &str) -> Result<CancelOutcome, RuntimeError> {
        if self.drivers.stop(run_id, None) {
            return Ok(CancelOutcome::Stopping);
        }
        if self
            .store
            .cancel_queued_run(run_id, "cancelled before it started")
            .await?
        {
            let ended = self.store.get_run(run_id).await?;
            return Ok(CancelOutcome::Withdrawn(Box::new(ended)));
        }
        // Claimed by an executor just now: its driver registers soon.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if self.drivers.stop(run_id, None) {
            return Ok(CancelOutcome::Stopping);
        }
        if self.store.request_run_cancel(run_id).await? {
            Ok(CancelOutcome::Requested)
        } else {
            Ok(CancelOutcome::Unheld)
        }
    }

    /// Stops a run driven here that made no progress: it ends as cancelled
    /// with `reason` in its journal. `false` when it is not driven here.
    pub fn stop_stuck(&self, run_id: &str, reason: &str) -> bool {
        self.drivers.stop(run_id, Some(reason))
    }

    /// Ends as failed a run whose driver could not run it (its agent is
    /// gone, the driver panicked), journaled like any end, and completes
    /// its job. A run already ended is left as it is. Should recording the
    /// end fail, the job is left to its lease: the next claim drives the
    /// run again, so it still ends, once.
    pub async fn fail_run(
        &self,
        job: &Job,
        run_id: &str,
        reason: &str,
        events: Events<'_>,
    ) -> Result<RunRecord, RuntimeError> {
        tracing::error!(run = %run_id, reason, "run failed");
        let mut run = self.store.get_run(run_id).await?;
        if !run.status.is_terminal() {
            run = self
                .finish(
                    &mut run,
                    RunStatus::Failed,
                    Some(reason.to_string()),
                    events,
                )
                .await?;
        }
        self.store.complete_job(job).await?;
        Ok(run)
    }
}
