//! Narrow handles on the store for holders that need one part of it: a
//! table trait alone (`Store::schedules`, `Store::sessions`, …), or the
//! read-only view of runs a surface shows ([`RunsView`]): runs are changed
//! by the runtime only.

use std::sync::Arc;

use cairn_core::{JournalEntry, RunRecord};

use crate::{
    AgentStore, Backend, BatchStore, ChannelStore, JobQueue, KeyStore, MemoryStore, RunProgress,
    ScheduleStore, SessionStore, Store, StoreError,
};

/// Runs and their journals, to read.
#[derive(Clone)]
pub struct RunsView(Arc<dyn Backend>);

impl RunsView {
    /// A run by id or by a unique id prefix.
    pub async fn get_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError> {
        self.0.get_run(id_or_prefix).await
    }

    /// Runs, newest first, optionally of one session.
    pub async fn list_runs(
        &self,
        session_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.0.list_runs(session_id, limit).await
    }

    /// `user`'s runs, newest first, optionally of one session.
    pub async fn list_runs_of(
        &self,
        user: &str,
        session_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.0.list_runs_of(user, session_id, limit).await
    }

    /// Counts of runs per status.
    pub async fn run_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.0.run_counts().await
    }

    /// Runs in progress with their last sign of progress.
    pub async fn running_progress(&self) -> Result<Vec<RunProgress>, StoreError> {
        self.0.running_progress().await
    }

    /// The journal of a run, in order.
    pub async fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        self.0.journal(run_id).await
    }

    /// Checks the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
}

impl Store {
    /// Runs and journals, read-only.
    pub fn runs(&self) -> RunsView {
        RunsView(self.0.clone())
    }

    /// The schedules table alone: what a holder that only manages
    /// schedules (the schedule tools) is given, instead of the store.
    pub fn schedules(&self) -> Arc<dyn ScheduleStore> {
        self.0.clone()
    }

    /// The sessions table alone.
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        self.0.clone()
    }

    /// The agents table alone.
    pub fn agents(&self) -> Arc<dyn AgentStore> {
        self.0.clone()
    }

    /// The channels' tables alone.
    pub fn channels(&self) -> Arc<dyn ChannelStore> {
        self.0.clone()
    }

    /// The memories table alone.
    pub fn memories(&self) -> Arc<dyn MemoryStore> {
        self.0.clone()
    }

    /// The job queue alone (claiming and completing run jobs).
    pub fn queue(&self) -> Arc<dyn JobQueue> {
        self.0.clone()
    }

    /// People's API keys alone.
    pub fn keys(&self) -> Arc<dyn KeyStore> {
        self.0.clone()
    }

    /// The batches table alone (and its leader rows).
    pub fn batches(&self) -> Arc<dyn BatchStore> {
        self.0.clone()
    }
}
