//! Built-in tools. Every path a tool touches resolves inside the agent's
//! workspace directory; `..`, absolute paths elsewhere and symlinks that
//! leave it are refused. Output is capped (head and tail kept) so one call
//! cannot flood the model's context. Each tool says whether it is
//! idempotent, which decides whether a crash-interrupted call may re-run.

/// Unwraps a `Result<T, ToolOutput>`, or returns the tool error from `call`.
macro_rules! tool_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(out) => return out,
        }
    };
}

mod beneath;
mod cap;
mod exec;
mod files;
mod http_fetch;
pub mod mcp;
mod memory;
pub mod net_guard;
mod progress;
mod registry;
pub mod sandbox;
mod schedule;
mod workspace;

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use tokio_util::sync::CancellationToken;

pub use cap::CappedOutput;
pub use exec::exec_timeout;
pub use progress::{Progress, Utf8Chunks};
pub use registry::{BUILTIN_TOOLS, ToolRegistry, UnknownTool};
pub use workspace::{PathRefused, Workspace};

/// What a tool call runs with.
#[derive(Clone)]
pub struct ToolContext {
    /// The agent's workspace.
    pub workspace: Workspace,
    /// Fires when the run is cancelled; long tools stop and clean up.
    pub cancel: CancellationToken,
    /// Bytes of output kept per call (half head, half tail).
    pub output_limit: usize,
    /// The agent running the call (whose memory the memory tools use).
    pub agent: String,
    /// The person the session belongs to, when known.
    pub user_id: Option<String>,
    /// The run making the call.
    pub run_id: Option<String>,
    /// Memory, for the memory tools.
    pub memory: Option<std::sync::Arc<cairn_memory::Memory>>,
    /// Where the agent's skills are (shared first).
    pub skill_dirs: Vec<std::path::PathBuf>,
    /// The session of the run making the call.
    pub session_id: Option<String>,
    /// The schedules table, for the schedule tools (the only part of the
    /// store a tool is given).
    pub schedules: Option<std::sync::Arc<dyn cairn_store::ScheduleStore>>,
    /// Where the agent's commands run.
    pub sandbox: sandbox::Sandbox,
    /// This call's key, stable across restarts of the run (`<run>/<journal
    /// seq>`): a call re-run after a crash has the same key, so a tool can
    /// make its effect happen once (remote jobs, idempotency keys).
    pub call_key: Option<String>,
    /// Where the call's output goes as it appears (commands stream theirs).
    pub progress: Option<Progress>,
}

impl ToolContext {
    /// A context for calls outside any run (tests, benchmarks, tools used
    /// directly): no memory, no store, the default sandbox.
    pub fn new(workspace: Workspace) -> Self {
        ToolContext {
            workspace,
            cancel: CancellationToken::new(),
            output_limit: 32 * 1024,
            agent: "default".into(),
            user_id: None,
            run_id: None,
            memory: None,
            skill_dirs: vec![],
            session_id: None,
            schedules: None,
            sandbox: Default::default(),
            call_key: None,
            progress: None,
        }
    }

    /// This context for the call with `key`, streaming to `progress`.
    pub fn for_call(&self, key: String, progress: Option<Progress>) -> ToolContext {
        ToolContext {
            call_key: Some(key),
            progress,
            ..self.clone()
        }
    }
}

/// Why an MCP server pinned to cluster workers offers no tools here.
#[derive(Debug, thiserror::Error)]
pub enum McpUnplaced {
    /// This process dispatches to no workers.
    #[error(
        "it is pinned to cluster workers (node = …), but this server is not a coordinator (cairn serve --role coordinator)"
    )]
    NotCoordinator,
    /// No connected worker has the labels it is pinned to.
    #[error("no worker with labels {0} is connected")]
    NoWorker(String),
    /// A worker was asked and could not list its tools (its words).
    #[error("{0}")]
    Listing(String),
    /// The cluster's own state could not be read.
    #[error(transparent)]
    Cluster(Box<dyn std::error::Error + Send + Sync>),
}

/// Moves some of an agent's tools elsewhere (to cluster workers): replaces
/// them in its registry with stand-ins that dispatch the calls.
#[async_trait]
pub trait ToolPlacement: Send + Sync {
    /// Rewrites `tools` for `agent`, whose `placement` is set.
    fn place(&self, agent: &cairn_core::AgentSpec, tools: &mut ToolRegistry);

    /// Adds stand-ins for the tools of MCP server `server`, which runs on
    /// the workers `config.node` names, to `tools`; why not, if it cannot.
    async fn place_mcp(
        &self,
        server: &str,
        config: &mcp::McpServerConfig,
        tools: &mut ToolRegistry,
    ) -> Result<(), McpUnplaced>;
}

/// Where no cluster is at hand, an agent's placed tools fail with an
/// explanation rather than running on this host against its owner's wish.
pub fn refuse_placed(agent: &cairn_core::AgentSpec, tools: &mut ToolRegistry) {
    let Some(p) = &agent.placement else { return };
    let names: Vec<String> = tools
        .names()
        .into_iter()
        .filter(|n| p.tools.is_empty() || p.tools.contains(n))
        .collect();
    for name in names {
        if let Some(tool) = tools.get(&name).cloned() {
            tools.insert(std::sync::Arc::new(Unplaced(tool)));
        }
    }
}

/// A placed tool on a host that cannot place it.
struct Unplaced(std::sync::Arc<dyn Tool>);

#[async_trait]
impl Tool for Unplaced {
    fn spec(&self) -> ToolSpec {
        self.0.spec()
    }
    fn idempotent(&self) -> bool {
        self.0.idempotent()
    }
    fn keyed(&self) -> bool {
        self.0.keyed()
    }
    async fn call(&self, _ctx: &ToolContext, _input: serde_json::Value) -> ToolOutput {
        ToolOutput::error(
            "this agent's placement sends this tool to cluster workers, but this server is not a coordinator (cairn serve --role coordinator); it was not run here",
        )
    }
}

/// A tool the model can call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// Name, description and argument schema.
    fn spec(&self) -> ToolSpec;

    /// Whether running it twice has the same effect as once. Only idempotent
    /// calls are re-run after a crash interrupted them.
    fn idempotent(&self) -> bool;

    /// Whether a call repeated with the same `call_key` takes effect once
    /// (the key names the effect, as a cluster tool job's id does). Such a
    /// call is resumed after a crash even when it is not idempotent.
    fn keyed(&self) -> bool {
        false
    }

    /// Where its calls run, for the audit log.
    fn place(&self) -> cairn_core::audit::Place {
        cairn_core::audit::Place::Local
    }

    /// Runs the call. Failures are results (`is_error`), for the model to read.
    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput;
}

/// Reads a required string argument.
pub(crate) fn str_arg<'a>(input: &'a serde_json::Value, key: &str) -> Result<&'a str, ToolOutput> {
    input
        .get(key)
        .and_then(|v| v.as_str())
        .ok_or_else(|| ToolOutput::error(format!("missing string argument \"{key}\"")))
}
