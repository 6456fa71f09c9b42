//! Driving batches: each pass collects the items whose runs ended and
//! starts pending items up to the batch's concurrency. Starting an item
//! and queueing its run are one transaction that only succeeds for a
//! pending item, so an item never gets two live runs; the runs themselves
//! are ordinary queued runs, resumed after any crash like every other.

use cairn_core::batch::ItemStatus;
use cairn_core::now_ms;

use crate::{Runtime, RuntimeError};

impl Runtime {
    /// One pass over the unfinished batches; how many items were started.
    pub async fn drive_batches(&self) -> Result<usize, RuntimeError> {
        let mut started = 0;
        for batch in self.store.active_batches().await? {
            self.store.settle_batch(&batch).await?;
            let counts = self.store.batch_counts(&batch.id).await?;
            let room = batch.concurrency - counts.running;
            if room <= 0 || counts.pending == 0 {
                continue;
            }
            let agent = match self.store.get_agent(&batch.agent).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(batch = %batch.name, agent = %batch.agent, error = %e, "batch waits: its agent is not known here");
                    continue;
                }
            };
            let items = self
                .store
                .batch_items(&batch.id, Some(ItemStatus::Pending), -1, room)
                .await?;
            for item in items {
                // A session per attempt: a retry starts clean.
                let session = format!("{}-{}-{}", batch.id, item.idx, item.attempt + 1);
                let run = self.queued_run(&agent, session, item.input.clone(), now_ms());
                if self
                    .store
                    .start_batch_item(&batch.id, item.idx, &run)
                    .await?
                {
                    started += 1;
                }
            }
        }
        Ok(started)
    }
}
