//! Tools placed on cluster workers: in an agent's registry the placed
//! tools are replaced by stand-ins that submit each call as a tool job and
//! wait for its result. The job's id is the call's durable key, so a run
//! resumed after a crash finds the job it submitted (and its result, if the
//! worker finished) instead of running the call twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cairn_core::cluster::Labels;
use cairn_core::cluster::{NewToolJob, ToolJobRecord};
use cairn_core::{AgentSpec, Placement, ToolOutput, ToolSpec, now_ms};
use cairn_tools::mcp::{LIST_JOB, McpServerConfig, OfferedTool};
use cairn_tools::{McpUnplaced, Tool, ToolContext, ToolPlacement, ToolRegistry, Workspace};

use crate::coordinator::Coordinator;
use crate::pki::sha256_hex;
use crate::runner::WORKER_TOOLS;

/// Results recorded by another coordinator are looked for this often.
const POLL: Duration = Duration::from_millis(100);
/// Default wait for a worker to take a call.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);

/// How long a worker's list of an MCP server's tools is reused.
const MCP_LIST_TTL: Duration = Duration::from_secs(60);

/// Places agents' tools on this coordinator's cluster.
pub struct ClusterPlacement {
    co: Arc<Coordinator>,
    /// MCP servers' tools as workers last listed them, by server.
    mcp_lists: Mutex<HashMap<String, (Instant, Vec<OfferedTool>)>>,
}

impl ClusterPlacement {
    /// Placement on `co`'s cluster.
    pub fn new(co: Arc<Coordinator>) -> Self {
        ClusterPlacement {
            co,
            mcp_lists: Mutex::default(),
        }
    }

    /// The tools of `server` as a worker with its labels lists them
    /// (reused for a minute).
    async fn mcp_list(
        &self,
        server: &str,
        placement: &Placement,
    ) -> Result<Vec<OfferedTool>, McpUnplaced> {
        if let Ok(lists) = self.mcp_lists.lock()
            && let Some((at, list)) = lists.get(server)
            && at.elapsed() < MCP_LIST_TTL
        {
            return Ok(list.clone());
        }
        // Listing waits for a worker like any call; with none up that
        // could be minutes per run, so it is not asked at all.
        let since = now_ms() - (self.co.settings.heartbeat() * 4).as_millis() as i64;
        let up = self
            .co
            .store
            .list_nodes()
            .await
            .map_err(|e| McpUnplaced::Cluster(Box::new(e)))?
            .into_iter()
            .any(|n| {
                n.coordinator.is_some()
                    && n.revoked_at.is_none()
                    && n.last_seen.is_some_and(|t| t >= since)
                    && n.labels.satisfies(&placement.requires)
            });
        if !up {
            return Err(McpUnplaced::NoWorker(placement.requires.to_string()));
        }
        let lister = RemoteTool {
            spec: ToolSpec {
                name: LIST_JOB.into(),
                description: String::new(),
                input_schema: serde_json::json!({}),
            },
            idempotent: true,
            placement: placement.clone(),
            co: self.co.clone(),
        };
        let scratch = std::env::temp_dir().join("cairn-mcp-list");
        let ctx = ToolContext::new(
            Workspace::open(&scratch).map_err(|e| McpUnplaced::Cluster(Box::new(e)))?,
        );
        let out = lister
            .call(&ctx, serde_json::json!({ "server": server }))
            .await;
        if out.is_error {
            return Err(McpUnplaced::Listing(out.content));
        }
        let list: Vec<OfferedTool> = serde_json::from_str(&out.content).map_err(|e| {
            McpUnplaced::Listing(format!("the worker's tool list is unreadable: {e}"))
        })?;
        if let Ok(mut lists) = self.mcp_lists.lock() {
            lists.insert(server.to_string(), (Instant::now(), list.clone()));
        }
        Ok(list)
    }
}

#[async_trait]
impl ToolPlacement for ClusterPlacement {
    async fn place_mcp(
        &self,
        server: &str,
        config: &McpServerConfig,
        tools: &mut ToolRegistry,
    ) -> Result<(), McpUnplaced> {
        let placement = Placement {
            requires: Labels(config.node.clone()),
            tools: Vec::new(),
            workspace: String::new(),
            deadline_s: config.timeout_s.max(1),
        };
        let prefix = format!("{server}__");
        for offered in self.mcp_list(server, &placement).await? {
            // A worker answers for its own servers only.
            if !offered.spec.name.starts_with(&prefix) {
                continue;
            }
            tools.insert(Arc::new(RemoteTool {
                spec: offered.spec,
                idempotent: offered.idempotent,
                placement: placement.clone(),
                co: self.co.clone(),
            }));
        }
        Ok(())
    }

    fn place(&self, agent: &AgentSpec, tools: &mut ToolRegistry) {
        let Some(placement) = &agent.placement else {
            return;
        };
        for name in tools.names() {
            let wanted = placement.tools.is_empty() || placement.tools.contains(&name);
            if !wanted || !WORKER_TOOLS.contains(&name.as_str()) {
                continue;
            }
            if let Some(local) = tools.get(&name).cloned() {
                tools.insert(Arc::new(RemoteTool {
                    spec: local.spec(),
                    idempotent: local.idempotent(),
                    placement: placement.clone(),
                    co: self.co.clone(),
                }));
            }
        }
    }
}

/// A tool whose calls run on a worker.
struct RemoteTool {
    spec: ToolSpec,
    idempotent: bool,
    placement: Placement,
    co: Arc<Coordinator>,
}

/// W3C trace context for a call: the trace is the run's, the span the
/// call's, both derived from their ids so a resumed run continues them.
fn traceparent(run: &str, call: &str) -> String {
    let trace = sha256_hex(run.as_bytes());
    let span = sha256_hex(call.as_bytes());
    format!("00-{}-{}-01", &trace[..32], &span[..16])
}

impl RemoteTool {
    fn job(&self, ctx: &ToolContext, input: serde_json::Value) -> NewToolJob {
        let id = ctx
            .call_key
            .clone()
            .unwrap_or_else(|| cairn_core::ids::new_id("call"));
        let run_id = ctx.run_id.clone().unwrap_or_default();
        let deadline = match self.placement.deadline_s {
            0 => DEFAULT_DEADLINE,
            s => Duration::from_secs(s),
        };
        NewToolJob {
            traceparent: Some(traceparent(&run_id, &id)),
            id,
            run_id,
            tool: self.spec.name.clone(),
            input,
            requires: self.placement.requires.clone(),
            workspace: Some(self.placement.workspace.clone()).filter(|w| !w.is_empty()),
            sandbox: ctx.sandbox.profile,
            idempotent: self.idempotent,
            deadline_ms: now_ms() + deadline.as_millis() as i64,
        }
    }
}

#[async_trait]
impl Tool for RemoteTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    /// The job id is the call key: a resumed call finds its job (and the
    /// worker's result) instead of submitting the call again.
    fn keyed(&self) -> bool {
        true
    }

    fn place(&self) -> cairn_core::audit::Place {
        cairn_core::audit::Place::Cluster
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let job = self.job(ctx, input);
        let id = job.id.clone();
        // Registered before the job exists, so no result can slip by.
        let wake = self.co.waiter(&id, ctx.progress.clone());
        let out = self.await_job(ctx, &job, &wake).await;
        self.co.forget_waiter(&id);
        out
    }
}

impl RemoteTool {
    /// The run was cancelled: the job is, and its worker is told to stop.
    async fn cancel(&self, id: &str) -> ToolOutput {
        match self.co.store.cancel_tool_job(id).await {
            Ok(Some((node, attempt))) => self.co.stop_on_worker(&node, id, attempt).await,
            Ok(None) => {}
            Err(e) => {
                // Its lease then runs out as for a lost coordinator.
                tracing::error!(job = %id, error = %e, "could not cancel a tool job");
            }
        }
        ToolOutput::error("cancelled while a worker ran this call; the worker was told to stop it")
    }

    /// Straight to a worker connected here when one fits, else ready for
    /// any coordinator's dispatcher.
    async fn submit(&self, job: &NewToolJob) -> Result<ToolJobRecord, cairn_store::StoreError> {
        if let Some(record) = self.co.submit_placed(job).await? {
            return Ok(record);
        }
        let record = self.co.store.submit_tool_job(job).await?;
        self.co.wake.notify_one();
        Ok(record)
    }

    async fn await_job(
        &self,
        ctx: &ToolContext,
        job: &NewToolJob,
        wake: &tokio::sync::Notify,
    ) -> ToolOutput {
        let store = &self.co.store;
        let mut current = match self.submit(job).await {
            Ok(r) => r,
            Err(e) => {
                return ToolOutput::error(format!("could not submit the call to the cluster: {e}"));
            }
        };
        loop {
            if current.status.is_final() {
                if let Some(node) = &current.node {
                    self.co.note_home(job, node);
                }
                return current
                    .output
                    .unwrap_or_else(|| ToolOutput::error("the worker's result was lost"));
            }
            tokio::select! {
                () = wake.notified() => {}
                // Woken at once by a result recorded here; one recorded by
                // another coordinator is seen at the next look. (Announcing
                // every result would wake every waiting call for each.)
                () = tokio::time::sleep(POLL) => {}
                () = ctx.cancel.cancelled() => return self.cancel(&job.id).await,
            }
            current = match store.tool_job(&job.id).await {
                Ok(Some(r)) => r,
                Ok(None) => return ToolOutput::error("the cluster job vanished"),
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "could not read a tool job; retrying");
                    continue;
                }
            };
        }
    }
}
