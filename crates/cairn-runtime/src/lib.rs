//! The agent loop. A turn takes a session (waiting while another run holds
//! it), appends the user's message, then alternates model calls and tool
//! calls until the model answers without tools, the step limit is hit, or
//! the turn is cancelled. Every step is journaled: intent before, result
//! after, committed together with the session message and run totals.

#![deny(clippy::too_many_lines)]

mod batch;
mod compact;
mod control;
mod drive;
mod history;
mod lease;
mod notices;
mod recall;
mod scheduler;
mod shared;
mod steps;
mod summary;
mod tool_step;
mod turn;
mod work;

use std::path::PathBuf;
use std::sync::Arc;

use cairn_llm::pricing::PriceTable;
use cairn_llm::{Provider, RetryPolicy};
use cairn_memory::Memory;
use cairn_store::{Store, StoreError};
use thiserror::Error;

pub use cairn_core::AgentSpec;
pub use cairn_core::agent::DEFAULT_SYSTEM_PROMPT;
pub use cairn_tools::BUILTIN_TOOLS;
pub use control::{CancelOutcome, Driven};
pub use history::close_open_tool_calls;
pub use scheduler::{AgentSource, ON_TIME_GRACE_MS, TickReport, iso};
pub use turn::{JOB_LEASE_MS, TurnRequest};

/// What stops a turn before it can even be recorded as failed.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A user-given name was refused.
    #[error(transparent)]
    InvalidName(#[from] cairn_core::ids::InvalidName),
    /// The agent's workspace could not be prepared.
    #[error("cannot prepare workspace {path}: {source}")]
    Workspace {
        /// Directory.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The agent's tool list names a tool that does not exist.
    #[error(transparent)]
    UnknownTool(#[from] cairn_tools::UnknownTool),
    /// The agent names an MCP server that is not configured.
    #[error("agent's MCP servers: {0}")]
    Mcp(#[from] cairn_tools::mcp::McpError),
}

impl RuntimeError {
    /// Whether trying again cannot help: the agent's setup is wrong (its
    /// workspace, tools or MCP servers), so its runs fail rather than wait;
    /// a store error is permanent unless it is an outage
    /// (`StoreError::is_transient`).
    pub fn is_permanent(&self) -> bool {
        match self {
            RuntimeError::Store(e) => !e.is_transient(),
            _ => true,
        }
    }
}

/// How a runtime is set up; every field has a default (`Settings::default`).
#[derive(Clone)]
pub struct Settings {
    /// Prices for cost accounting.
    pub prices: PriceTable,
    /// Retry policy for model calls.
    pub retry: RetryPolicy,
    /// Bytes of tool output kept per call.
    pub tool_output_limit: usize,
    /// How long a session lease lasts without renewal (ms).
    pub session_lease_ms: i64,
    /// How long a run's job lease lasts without a heartbeat: after a crash,
    /// another process resumes the run this long after the last beat.
    pub job_lease_ms: i64,
    /// What agents remember across sessions (words only over the store
    /// when `None`).
    pub memory: Option<Arc<Memory>>,
    /// `CAIRN_HOME`, under which skills live (none when `None`).
    pub home: Option<PathBuf>,
    /// Bytes of remembered facts put in the system prompt of a run (0: none).
    pub memory_prompt_budget: usize,
    /// What sandboxed commands are kept from, and their limits.
    pub sandbox: Arc<cairn_tools::sandbox::SandboxPolicy>,
    /// Sends agents' placed tools to cluster workers (set on coordinators).
    pub placement: Option<Arc<dyn cairn_tools::ToolPlacement>>,
    /// MCP servers' connections, whose tools agents that name them get.
    pub mcp: Option<Arc<cairn_tools::mcp::McpHub>>,
    /// Where tool runs and refusals are recorded (none: not recorded).
    pub audit: Option<cairn_store::AuditLog>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prices: PriceTable::default(),
            retry: RetryPolicy::default(),
            tool_output_limit: 32 * 1024,
            session_lease_ms: 30_000,
            job_lease_ms: JOB_LEASE_MS,
            memory: None,
            home: None,
            memory_prompt_budget: 2000,
            sandbox: Default::default(),
            placement: None,
            mcp: None,
            audit: None,
        }
    }
}

/// Everything a turn needs; cheap to clone and share. Its parts are
/// private: it is set up once ([`Settings`]) and read through accessors, and
/// runs change only through its methods.
#[derive(Clone)]
pub struct Runtime {
    store: Store,
    provider: Arc<dyn Provider>,
    workspaces: PathBuf,
    /// How it was set up (its `memory` taken out into the field below).
    settings: Settings,
    memory: Arc<Memory>,
    /// When fired, runs pause at their next step boundary (graceful stop).
    stopping: tokio_util::sync::CancellationToken,
    /// Bumped when a channel message is queued: running turns then look
    /// for messages to take in at their next step.
    inbound: Arc<std::sync::atomic::AtomicU64>,
    /// The runs this process drives, with their cancel switches.
    drivers: Arc<control::Drivers>,
}

impl Runtime {
    /// A runtime with default settings.
    pub fn new(store: Store, provider: Arc<dyn Provider>, workspaces: PathBuf) -> Self {
        Runtime::with_settings(store, provider, workspaces, Settings::default())
    }

    /// A runtime set up with `settings`.
    pub fn with_settings(
        store: Store,
        provider: Arc<dyn Provider>,
        workspaces: PathBuf,
        mut settings: Settings,
    ) -> Self {
        let memory = settings
            .memory
            .take()
            .unwrap_or_else(|| Arc::new(Memory::new(store.clone(), None)));
        Runtime {
            store,
            provider,
            workspaces,
            settings,
            memory,
            stopping: Default::default(),
            inbound: Default::default(),
            drivers: Default::default(),
        }
    }

    /// This runtime, sending placed tools through `placement` (a
    /// coordinator's cluster, known only once the cluster is up).
    pub fn with_placement(mut self, placement: Arc<dyn cairn_tools::ToolPlacement>) -> Self {
        self.settings.placement = Some(placement);
        self
    }

    /// The audit log, when one is kept.
    pub fn audit(&self) -> Option<&cairn_store::AuditLog> {
        self.settings.audit.as_ref()
    }

    /// Durable state.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The model provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// What agents remember.
    pub fn memory(&self) -> &Arc<Memory> {
        &self.memory
    }

    /// MCP servers' connections, when any are configured.
    pub fn mcp(&self) -> Option<&Arc<cairn_tools::mcp::McpHub>> {
        self.settings.mcp.as_ref()
    }

    /// `CAIRN_HOME`, when known.
    pub fn home(&self) -> Option<&std::path::Path> {
        self.settings.home.as_deref()
    }

    /// How long a run's job lease lasts without a heartbeat (ms).
    pub fn job_lease_ms(&self) -> i64 {
        self.settings.job_lease_ms
    }

    /// What sandboxed commands are kept from.
    pub fn sandbox(&self) -> &cairn_tools::sandbox::SandboxPolicy {
        &self.settings.sandbox
    }

    /// Fired to pause runs at their next step boundary (graceful stop).
    pub fn stopping(&self) -> &tokio_util::sync::CancellationToken {
        &self.stopping
    }

    /// Tells running turns a channel message was queued for them to take in.
    pub fn message_queued(&self) {
        self.inbound
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}
