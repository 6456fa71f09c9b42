//! What every handler and executor shares.

use std::sync::Mutex;

use cairn_core::AgentSpec;
use cairn_runtime::Runtime;
use std::sync::Arc;

use cairn_store::{
    AgentStore, BatchStore, ChannelStore, JobQueue, KeyStore, MemoryStore, RunsView, ScheduleStore,
    SessionStore, Store, StoreError,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hub::EventHub;

/// The parts of the store the server holds: the tables it serves, the
/// queue its executors claim from, and runs to read. Runs are changed by
/// the runtime alone, so no handle here writes them.
pub struct Tables {
    /// Agents.
    pub(crate) agents: Arc<dyn AgentStore>,
    /// Sessions and their messages.
    pub(crate) sessions: Arc<dyn SessionStore>,
    /// Schedules and their fires.
    pub(crate) schedules: Arc<dyn ScheduleStore>,
    /// Channel inbox, outbox and cursors.
    pub(crate) channels: Arc<dyn ChannelStore>,
    /// Memories (the episodic index).
    pub(crate) memories: Arc<dyn MemoryStore>,
    /// The run-driving jobs.
    pub(crate) queue: Arc<dyn JobQueue>,
    /// Batches' leader row.
    pub(crate) batches: Arc<dyn BatchStore>,
    /// Runs and journals, read-only.
    pub(crate) runs: RunsView,
    /// People's API keys.
    pub(crate) keys: Arc<dyn KeyStore>,
}

impl Tables {
    /// The server's handles on `store`.
    pub fn of(store: &Store) -> Tables {
        Tables {
            agents: store.agents(),
            sessions: store.sessions(),
            schedules: store.schedules(),
            channels: store.channels(),
            memories: store.memories(),
            queue: store.queue(),
            batches: store.batches(),
            keys: store.keys(),
            runs: store.runs(),
        }
    }
}

/// Shared server state.
pub struct AppState {
    /// The runtime (provider, limits; the only writer of runs).
    pub(crate) rt: Runtime,
    /// What the server reads and writes of the store.
    pub(crate) tables: Tables,
    /// Live run events by run id.
    pub(crate) hub: EventHub,
    /// Wakes an executor when a run is queued.
    pub(crate) wake: Notify,
    /// Bearer key the API requires, if any.
    pub(crate) api_key: Option<String>,
    /// The operator's key: also admits to the API, and alone may widen an
    /// agent's isolation (sandbox, env, MCP servers, placement, network).
    pub(crate) operator_key: Option<String>,
    /// Which Host and Origin values the API accepts.
    pub(crate) browser: crate::api::guard::BrowserPolicy,
    /// Fires when the server stops.
    pub(crate) shutdown: CancellationToken,
    /// The channels this server runs.
    pub(crate) channels: crate::channels::Channels,
    /// Wakes the outbox senders when a reply is enqueued.
    pub(crate) outbox: Notify,
    /// Wakes the reply loop when a run ends.
    pub(crate) run_done: Notify,
    /// Runs whose channel was already told they wait for a cooldown (told
    /// once, not at every rate-limited attempt).
    pub(crate) cooldown_told: Mutex<std::collections::HashSet<String>>,
    /// How many refusals the audit log takes per second.
    pub(crate) refusals: crate::audit::RefusalBudget,
}

impl AppState {
    /// New state around a runtime.
    pub fn new(rt: Runtime, api_key: Option<String>, shutdown: CancellationToken) -> Self {
        AppState {
            tables: Tables::of(rt.store()),
            rt,
            hub: EventHub::default(),
            wake: Notify::new(),
            api_key,
            operator_key: None,
            browser: Default::default(),
            shutdown,
            channels: Default::default(),
            outbox: Notify::new(),
            run_done: Notify::new(),
            cooldown_told: Default::default(),
            refusals: Default::default(),
        }
    }

    /// An agent by name: the store's, or the built-in default.
    pub async fn agent(&self, name: &str) -> Result<AgentSpec, StoreError> {
        match self.tables.agents.get_agent(name).await {
            Err(StoreError::NotFound { .. }) if name == "default" => Ok(AgentSpec::default()),
            other => other,
        }
    }
}
