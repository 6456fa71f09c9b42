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
mod memory;
pub mod net_guard;
mod registry;
pub mod sandbox;
mod schedule;
mod workspace;

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use tokio_util::sync::CancellationToken;

pub use cap::CappedOutput;
pub use registry::{BUILTIN_TOOLS, ToolRegistry, UnknownTool};
pub use workspace::Workspace;

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
    /// The store, for the schedule tools.
    pub store: Option<cairn_store::Store>,
    /// Where the agent's commands run.
    pub sandbox: sandbox::Sandbox,
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
            store: None,
            sandbox: Default::default(),
        }
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
