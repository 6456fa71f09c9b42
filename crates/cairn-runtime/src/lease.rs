//! Owning a session for the length of a turn: wait while another run holds
//! it, then keep the lease alive with a heartbeat.

use std::time::Duration;

use cairn_core::RunEvent;
use cairn_store::{SessionLease, Store};
use tokio_util::sync::CancellationToken;

use crate::RuntimeError;

/// Waits until the session is free and takes it. `None` if cancelled first.
pub(crate) async fn acquire(
    store: &Store,
    session_id: &str,
    run_id: &str,
    lease_ms: i64,
    cancel: &CancellationToken,
    events: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<Option<SessionLease>, RuntimeError> {
    let mut told = false;
    loop {
        if let Some(lease) = store
            .try_acquire_session(session_id, run_id, lease_ms)
            .await?
        {
            return Ok(Some(lease));
        }
        if !told {
            events(RunEvent::WaitingForSession {
                session_id: session_id.to_string(),
            });
            told = true;
        }
        let pause = Duration::from_millis(100 + fastrand::u64(0..150));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => return Ok(None),
        }
    }
}

/// Runs `beat` every third of a lease's length until dropped, or until
/// `beat` answers `false`.
pub(crate) struct Heartbeat {
    stop: CancellationToken,
}

impl Heartbeat {
    pub fn start<F, Fut>(lease_ms: i64, mut beat: F) -> Heartbeat
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let every = Duration::from_millis((lease_ms / 3).max(50) as u64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => if !beat().await { break },
                    _ = stopped.cancelled() => break,
                }
            }
        });
        Heartbeat { stop }
    }

    /// Keeps a session lease alive.
    pub fn session(store: Store, lease: SessionLease, lease_ms: i64) -> Heartbeat {
        Heartbeat::start(lease_ms, move || {
            let (store, lease) = (store.clone(), lease.clone());
            async move {
                if let Err(e) = store.renew_session_lease(&lease, lease_ms).await {
                    tracing::warn!(session = %lease.session_id(), error = %e, "session lease renewal failed");
                }
                true
            }
        })
    }

    /// Keeps a job lease alive; if the lease is lost (another process took
    /// the job over after it expired), fires `on_lost` and stops the work
    /// (`on_cancel`) so two never write; if the run was cancelled through
    /// another process, fires `on_cancel`.
    pub fn job(
        store: Store,
        job: cairn_store::Job,
        lease_ms: i64,
        on_lost: CancellationToken,
        on_cancel: CancellationToken,
    ) -> Heartbeat {
        Heartbeat::start(lease_ms, move || {
            let (store, job) = (store.clone(), job.clone());
            let (on_lost, on_cancel) = (on_lost.clone(), on_cancel.clone());
            async move {
                match store.heartbeat_job(&job, lease_ms).await {
                    Ok(cairn_store::Beat::Held) => true,
                    Ok(cairn_store::Beat::CancelRequested) => {
                        tracing::info!(job = %job.id, "the run was cancelled through another server");
                        on_cancel.cancel();
                        true
                    }
                    Ok(cairn_store::Beat::Lost) => {
                        tracing::warn!(job = %job.id, "job lease lost; stopping this driver");
                        on_lost.cancel();
                        on_cancel.cancel();
                        false
                    }
                    Err(e) => {
                        tracing::warn!(job = %job.id, error = %e, "job heartbeat failed");
                        true
                    }
                }
            }
        })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
