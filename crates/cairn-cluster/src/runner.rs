//! How a worker runs the tool jobs it is sent: the file, exec and fetch
//! tools (memory and schedules live with the coordinator's store), each in
//! its workspace under the worker's directory, in the sandbox profile the
//! job names, and the tools of the MCP servers its own config declares
//! (edge data that stays on this host). A worker never runs a call
//! unsandboxed unless its operator said so.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_tools::Tool;
use cairn_tools::mcp::{LIST_JOB, McpHub, OfferedTool};

use cairn_core::cluster::ToolJob;
use cairn_core::{SandboxProfile, ToolOutput};
use cairn_tools::sandbox::{Sandbox, SandboxPolicy};
use cairn_tools::{ToolContext, ToolRegistry, Workspace};

use crate::worker::{JobControl, JobRunner};

/// The tools a worker offers.
pub const WORKER_TOOLS: &[&str] = &[
    "exec",
    "read_file",
    "write_file",
    "edit_file",
    "list_dir",
    "http_fetch",
];

/// Runs jobs with the built-in tools.
pub struct ToolRunner {
    tools: ToolRegistry,
    workspaces: PathBuf,
    policy: Arc<SandboxPolicy>,
    allow_host: bool,
    output_limit: usize,
    mcp: Option<Arc<McpHub>>,
}

impl ToolRunner {
    /// Tools under `workspaces`, confined by `policy`; `allow_host` lets a
    /// job ask for no sandbox.
    pub fn new(workspaces: PathBuf, policy: Arc<SandboxPolicy>, allow_host: bool) -> ToolRunner {
        let names: Vec<String> = WORKER_TOOLS
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        ToolRunner {
            // The names are built-in ones, so this cannot fail; an empty
            // registry would refuse every job loudly anyway.
            tools: ToolRegistry::builtin(&names).unwrap_or_default(),
            workspaces,
            policy,
            allow_host,
            output_limit: 32 * 1024,
            mcp: None,
        }
    }

    /// Also runs the tools of `hub`'s MCP servers.
    pub fn with_mcp(mut self, hub: Arc<McpHub>) -> Self {
        self.mcp = Some(hub);
        self
    }

    /// The MCP server `server`'s tools, started in its own workspace under
    /// the job's sandbox profile when not running yet.
    async fn mcp_tools(
        &self,
        server: &str,
        job: &ToolJob,
    ) -> Result<Vec<Arc<dyn Tool>>, Unrunnable> {
        let Some(hub) = self
            .mcp
            .as_ref()
            .filter(|h| h.servers().contains_key(server))
        else {
            return Err(Unrunnable::NoSuchServer(server.to_string()));
        };
        let dir = self.workspaces.join("mcp").join(server);
        let ws = open_workspace(&dir)?;
        let sandbox = Sandbox {
            policy: self.policy.clone(),
            profile: job.sandbox,
            env: Default::default(),
            allow: Vec::new(),
        };
        Ok(hub.tools_for("worker", server, &sandbox, ws.root()).await?)
    }

    /// The `mcp.list` job: what one of this worker's MCP servers offers.
    async fn mcp_list(&self, job: &ToolJob) -> ToolOutput {
        let Some(server) = job.input.get("server").and_then(|v| v.as_str()) else {
            return ToolOutput::error("mcp.list needs {\"server\": …}");
        };
        let offered: Vec<OfferedTool> = match self.mcp_tools(server, job).await {
            Ok(tools) => tools
                .iter()
                .map(|t| OfferedTool {
                    spec: t.spec(),
                    idempotent: t.idempotent(),
                })
                .collect(),
            Err(e) => return ToolOutput::error(e.to_string()),
        };
        match serde_json::to_string(&offered) {
            Ok(text) => ToolOutput::ok(text),
            Err(e) => ToolOutput::error(format!("cannot encode the tool list: {e}")),
        }
    }

    /// The tool a job names: a built-in, or `<server>__<tool>` of one of
    /// this worker's MCP servers.
    async fn tool(&self, job: &ToolJob) -> Result<Arc<dyn Tool>, Unrunnable> {
        if let Some(t) = self.tools.get(&job.tool) {
            return Ok(t.clone());
        }
        let not_offered = || Unrunnable::NotOffered(job.tool.clone());
        let Some((server, _)) = job.tool.split_once("__") else {
            return Err(not_offered());
        };
        self.mcp_tools(server, job)
            .await?
            .into_iter()
            .find(|t| t.spec().name == job.tool)
            .ok_or_else(not_offered)
    }

    fn workspace(&self, job: &ToolJob) -> Result<(Workspace, bool), Unrunnable> {
        let (dir, ephemeral) = match &job.workspace {
            Some(name) if is_name(name) => (self.workspaces.join("named").join(name), false),
            Some(name) => return Err(Unrunnable::BadWorkspaceName(name.clone())),
            None => (self.workspaces.join("jobs").join(&job.job), true),
        };
        open_workspace(&dir).map(|w| (w, ephemeral))
    }
}

/// Why a worker cannot run the job it was sent; told back as the tool's
/// error.
#[derive(Debug, thiserror::Error)]
enum Unrunnable {
    /// No MCP server of that name here.
    #[error("this worker has no MCP server named {0:?}")]
    NoSuchServer(String),
    /// Neither a built-in nor a tool of one of this worker's MCP servers.
    #[error("this worker does not offer the tool {0:?}")]
    NotOffered(String),
    /// A workspace name that could climb out of the workspaces folder.
    #[error("workspace name {0:?} is not allowed")]
    BadWorkspaceName(String),
    /// The workspace folder cannot be made or opened.
    #[error("cannot open workspace {dir}: {source}")]
    Workspace {
        /// The folder.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The MCP server would not start or answer.
    #[error(transparent)]
    Mcp(#[from] cairn_tools::mcp::McpError),
}

/// Opens the workspace at `dir`.
fn open_workspace(dir: &std::path::Path) -> Result<Workspace, Unrunnable> {
    Workspace::open(dir).map_err(|source| Unrunnable::Workspace {
        dir: dir.display().to_string(),
        source,
    })
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('.')
}

#[async_trait::async_trait]
impl JobRunner for ToolRunner {
    async fn run(&self, job: &ToolJob, control: JobControl) -> ToolOutput {
        if job.sandbox == SandboxProfile::Host && !self.allow_host {
            return ToolOutput::error(
                "this worker does not run calls unsandboxed (start it with --allow-unsandboxed)",
            );
        }
        if job.tool == LIST_JOB {
            return self.mcp_list(job).await;
        }
        let tool = match self.tool(job).await {
            Ok(t) => t,
            Err(e) => return ToolOutput::error(e.to_string()),
        };
        let (workspace, ephemeral) = match self.workspace(job) {
            Ok(w) => w,
            Err(e) => return ToolOutput::error(e.to_string()),
        };
        let mut ctx = ToolContext::new(workspace.clone());
        ctx.output_limit = self.output_limit;
        ctx.run_id = Some(job.job.clone());
        ctx.cancel = control.cancel;
        ctx.progress = control.progress;
        ctx.sandbox = Sandbox {
            policy: self.policy.clone(),
            profile: job.sandbox,
            env: Default::default(),
            allow: Vec::new(),
        };
        let output = tool.call(&ctx, job.input.clone()).await;
        if ephemeral && let Err(e) = std::fs::remove_dir_all(workspace.root()) {
            tracing::warn!(job = %job.job, error = %e, "could not remove the job's workspace");
        }
        output
    }
}
