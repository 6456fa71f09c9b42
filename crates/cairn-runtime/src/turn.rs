//! Submitting a turn and driving a run. A run is recorded with its job in
//! one transaction; whoever claims the job drives the run from wherever its
//! journal says it is, so the same code starts a fresh run and resumes one
//! that a crash interrupted.

use std::time::Duration;

use cairn_core::ids::{new_id, validate_name};
use cairn_core::{RunEvent, RunRecord, RunStatus, now_ms};
use cairn_tools::{ToolRegistry, Workspace};
use tokio_util::sync::CancellationToken;

use crate::shared::Events;
use crate::{AgentSpec, Runtime, RuntimeError};

/// A turn to run.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    /// The agent.
    pub agent: AgentSpec,
    /// Session to continue or create; a fresh one when `None`.
    pub session_id: Option<String>,
    /// The user's message.
    pub input: String,
    /// The person the run works for (`None`: the local owner).
    pub user_id: Option<String>,
}

/// How long a job lease lasts without a heartbeat.
pub const JOB_LEASE_MS: i64 = 30_000;

impl Runtime {
    /// Refuses an agent naming MCP servers this runtime does not have.
    pub fn check_mcp(&self, agent: &AgentSpec) -> Result<(), RuntimeError> {
        if agent.mcp.is_empty() {
            return Ok(());
        }
        match &self.settings.mcp {
            Some(hub) => Ok(hub.check(agent)?),
            None => Err(cairn_tools::mcp::McpError::Unknown(agent.mcp[0].clone()).into()),
        }
    }

    /// Adds stand-ins for the tools of `agent`'s MCP servers pinned to
    /// cluster workers; one that cannot be reached is left out, with a
    /// warning (the operator must see it: logged at `warn` under
    /// `cairn_tools::mcp`'s filter too).
    pub(crate) async fn place_mcp(
        &self,
        agent: &AgentSpec,
        hub: &cairn_tools::mcp::McpHub,
        tools: &mut ToolRegistry,
    ) {
        for server in &agent.mcp {
            let Some(config) = hub.servers().get(server).filter(|c| c.pinned()) else {
                continue;
            };
            let placed = match &self.settings.placement {
                Some(p) => p.place_mcp(server, config, tools).await,
                None => Err(cairn_tools::McpUnplaced::NotCoordinator),
            };
            if let Err(e) = placed {
                tracing::warn!(target: "cairn_tools::mcp", agent = %agent.name, "MCP server {server} is not available: {e}");
            }
        }
    }

    /// `agent`'s workspace on this host, made if new.
    pub(crate) fn agent_workspace(&self, agent: &AgentSpec) -> Result<Workspace, RuntimeError> {
        let dir = self.workspaces.join(&agent.name);
        Workspace::open(&dir).map_err(|source| RuntimeError::Workspace {
            path: dir.display().to_string(),
            source,
        })
    }

    /// Starts `agent`'s local MCP servers now, so their tools are known (and
    /// a server that cannot start is reported) before the first run needs
    /// them; `cairn serve` calls it for each agent at start.
    pub async fn warm_mcp(&self, agent: &AgentSpec) -> Result<(), RuntimeError> {
        let Some(hub) = self.settings.mcp.as_ref().filter(|_| !agent.mcp.is_empty()) else {
            return Ok(());
        };
        let workspace = self.agent_workspace(agent)?;
        let sandbox =
            cairn_tools::sandbox::Sandbox::for_agent(self.settings.sandbox.clone(), agent);
        let mut tools = ToolRegistry::default();
        // Failures are logged by the hub as they happen.
        hub.add_tools(agent, &sandbox, workspace.root(), &mut tools)
            .await?;
        tracing::info!(agent = %agent.name, tools = tools.names().len(), "MCP servers started");
        Ok(())
    }

    /// Records a queued run (and its job) for `req`; someone must drive it.
    pub async fn submit(&self, req: &TurnRequest) -> Result<(RunRecord, String), RuntimeError> {
        validate_name("agent", &req.agent.name)?;
        let session_id = match &req.session_id {
            Some(s) => {
                validate_name("session", s)?;
                s.clone()
            }
            None => new_id("ses"),
        };
        ToolRegistry::builtin(&req.agent.tools)?;
        self.check_mcp(&req.agent)?;
        self.store
            .ensure_session(&session_id, &req.agent.name)
            .await?;
        let mut run = self.queued_run(&req.agent, session_id, req.input.clone(), now_ms());
        run.user_id = req.user_id.clone();
        let job = self.store.create_run(&run).await?;
        Ok((run, job))
    }

    /// A run of `agent` in `session_id` starting with `input`, queued at
    /// `now`, on the agent's model (or the provider's default): what a
    /// turn, a schedule and a channel message each start.
    pub fn queued_run(
        &self,
        agent: &AgentSpec,
        session_id: String,
        input: String,
        now: i64,
    ) -> RunRecord {
        RunRecord {
            id: new_id("run"),
            session_id,
            agent: agent.name.clone(),
            status: RunStatus::Queued,
            input,
            output: None,
            error: None,
            provider: self.provider.name().to_string(),
            model: if agent.model.is_empty() {
                self.provider.default_model().to_string()
            } else {
                agent.model.clone()
            },
            steps: 0,
            usage: Default::default(),
            cost_usd: 0.0,
            created_at: now,
            finished_at: None,
            user_id: None,
        }
    }

    /// Submits a turn and drives it to its end in this process — after
    /// finishing any earlier turns of the same session that an interrupted
    /// process left behind. A failure of the model or a tool ends the run as
    /// `failed` (returned, not an `Err`); `Err` means it could not be recorded.
    pub async fn run_turn(
        &self,
        req: TurnRequest,
        events: Events<'_>,
        cancel: CancellationToken,
    ) -> Result<RunRecord, RuntimeError> {
        let (run, _job) = self.submit(&req).await?;
        events(RunEvent::RunStarted {
            run_id: run.id.clone(),
            session_id: run.session_id.clone(),
        });
        loop {
            // Leases held by processes of this host that died are freed now,
            // so their runs can be finished (first) instead of blocking ours.
            self.store.recover_leases().await?;
            if let Some(job) = self
                .store
                .claim_session_backlog(&run.session_id, self.settings.job_lease_ms)
                .await?
            {
                if job.run_id.as_deref() == Some(run.id.as_str()) {
                    let driven = self
                        .drive(job, req.agent.clone(), events, cancel.clone())
                        .await?;
                    if driven.status.is_terminal() {
                        return Ok(driven);
                    }
                    // Cooling down: wait here until the job may be claimed again.
                    continue;
                }
                let earlier = job.run_id.clone().unwrap_or_default();
                events(RunEvent::ResumingRun { run_id: earlier });
                self.drive(job, req.agent.clone(), events, cancel.clone())
                    .await?;
                continue;
            }
            // Our job is held elsewhere (a server on the same home took it):
            // follow the run until it ends.
            let current = self.store.get_run(&run.id).await?;
            if current.status.is_terminal() {
                return Ok(current);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = cancel.cancelled() => return Ok(current),
            }
        }
    }
}
