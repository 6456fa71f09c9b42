//! Driving one claimed run: register it (so it can be stopped), keep its
//! job's lease, set up its tools, take its session, work the turn, and end
//! it. Every end goes through [`Runtime::finish`], which journals it; a run
//! that cannot start (no workspace, an unknown tool, an MCP server missing)
//! ends as failed the same way, and an end that cannot be recorded leaves
//! the job to its lease, so the run is driven again and still ends once.

use cairn_core::{AgentSpec, RunEvent, RunRecord, RunStatus, now_ms};
use cairn_store::{Job, SessionLease};
use cairn_tools::{ToolContext, ToolRegistry, Workspace};
use tokio_util::sync::CancellationToken;

use crate::control::Driving;
use crate::lease::{Heartbeat, acquire};
use crate::shared::{Events, Outcome, Turn};
use crate::{Runtime, RuntimeError};

/// How a driven turn left its run.
enum Left {
    /// The loop ended with this outcome, holding the session.
    Worked(Outcome, SessionLease),
    /// It never started: this is why.
    Unstarted(String),
    /// Cancelled while waiting for the session.
    NeverHeld,
    /// Its message joined the turn that held the session meanwhile.
    Absorbed(Box<RunRecord>, SessionLease),
}

/// A run's tools, as its agent is configured here.
struct Equipped {
    tools: ToolRegistry,
    workspace: Workspace,
    sandbox: cairn_tools::sandbox::Sandbox,
}

impl Runtime {
    /// Drives the run of a claimed job from its journal to its end.
    pub async fn drive(
        &self,
        job: Job,
        agent: AgentSpec,
        events: Events<'_>,
        cancel: CancellationToken,
    ) -> Result<RunRecord, RuntimeError> {
        let run_id = job.run_id.clone().unwrap_or_default();
        let mut run = self.store.get_run(&run_id).await?;
        if run.status.is_terminal() {
            // Finished before the process stopped; only the job was left.
            self.store.complete_job(&job).await?;
            return Ok(run);
        }
        events(RunEvent::RunStarted {
            run_id: run.id.clone(),
            session_id: run.session_id.clone(),
        });
        let cancel = cancel.child_token();
        let driving = self.drivers.register(&run.id, cancel.clone());
        let lost = CancellationToken::new();
        let _job_beat = Heartbeat::job(
            self.store.clone(),
            job.clone(),
            self.settings.job_lease_ms,
            lost.clone(),
            cancel.clone(),
        );
        let left = self.drive_turn(&agent, &mut run, events, &cancel).await;
        if lost.is_cancelled() {
            // Another process took the job over and drives the run now:
            // this one writes nothing more.
            tracing::warn!(run = %run.id, "job lease lost; the run goes on elsewhere");
            return Ok(run);
        }
        self.conclude(&job, run, left, &driving, events).await
    }

    /// Sets up the run's tools, takes its session and works the turn.
    async fn drive_turn(
        &self,
        agent: &AgentSpec,
        run: &mut RunRecord,
        events: Events<'_>,
        cancel: &CancellationToken,
    ) -> Result<Left, RuntimeError> {
        let equipped = match self.equip(agent, run).await {
            Ok(e) => e,
            Err(e) if e.is_permanent() => return Ok(Left::Unstarted(format!("cannot start: {e}"))),
            Err(e) => return Err(e),
        };
        let acquired = acquire(
            &self.store,
            &run.session_id,
            &run.id,
            self.settings.session_lease_ms,
            cancel,
            events,
        )
        .await?;
        let Some(mut lease) = acquired else {
            return Ok(Left::NeverHeld);
        };
        // While this waited for the session, its message may have joined
        // the turn that held it.
        let latest = self.store.get_run(&run.id).await?;
        if latest.status.is_terminal() {
            return Ok(Left::Absorbed(Box::new(latest), lease));
        }
        let _beat = Heartbeat::session(
            self.store.clone(),
            lease.clone(),
            self.settings.session_lease_ms,
        );
        let ctx = self
            .tool_context(agent, run, equipped.workspace, equipped.sandbox, cancel)
            .await?;
        let mut turn = Turn {
            run: &mut *run,
            lease: &mut lease,
            agent,
            tools: &equipped.tools,
            ctx: &ctx,
            events,
            cancel,
        };
        let outcome = self.work(&mut turn).await?;
        Ok(Left::Worked(outcome, lease))
    }

    /// The agent's workspace, tools (built-in, placed, MCP) and sandbox.
    async fn equip(&self, agent: &AgentSpec, run: &RunRecord) -> Result<Equipped, RuntimeError> {
        let workspace = self.agent_workspace(agent)?;
        let mut tools = ToolRegistry::builtin(&agent.tools)?;
        if agent.placement.is_some() {
            match &self.settings.placement {
                Some(p) => p.place(agent, &mut tools),
                None => cairn_tools::refuse_placed(agent, &mut tools),
            }
        }
        let sandbox =
            cairn_tools::sandbox::Sandbox::for_agent(self.settings.sandbox.clone(), agent);
        if let Some(hub) = self.settings.mcp.as_ref().filter(|_| !agent.mcp.is_empty()) {
            for warning in hub
                .add_tools(agent, &sandbox, workspace.root(), &mut tools)
                .await?
            {
                tracing::warn!(agent = %agent.name, run = %run.id, "{warning}; the run goes on without its tools");
            }
            self.place_mcp(agent, hub, &mut tools).await;
        }
        Ok(Equipped {
            tools,
            workspace,
            sandbox,
        })
    }

    /// What the run's tools run with.
    async fn tool_context(
        &self,
        agent: &AgentSpec,
        run: &RunRecord,
        workspace: Workspace,
        sandbox: cairn_tools::sandbox::Sandbox,
        cancel: &CancellationToken,
    ) -> Result<ToolContext, RuntimeError> {
        Ok(ToolContext {
            workspace,
            cancel: cancel.child_token(),
            output_limit: self.settings.tool_output_limit,
            agent: agent.name.clone(),
            user_id: match &run.user_id {
                Some(u) => Some(u.clone()),
                None => self.store.session_user(&run.session_id).await?,
            },
            run_id: Some(run.id.clone()),
            memory: Some(self.memory.clone()),
            skill_dirs: self.skill_dirs(&agent.name),
            session_id: Some(run.session_id.clone()),
            schedules: Some(self.store.schedules()),
            sandbox,
            call_key: None,
            progress: None,
        })
    }

    /// Ends the run as the turn left it (or hands its job back), then
    /// frees its session and job.
    async fn conclude(
        &self,
        job: &Job,
        mut run: RunRecord,
        left: Result<Left, RuntimeError>,
        driving: &Driving,
        events: Events<'_>,
    ) -> Result<RunRecord, RuntimeError> {
        let (status, reason, lease) = match left {
            Ok(Left::Worked(Outcome::CoolingDown, lease)) => {
                return self.cool_down(job, run, &lease, events).await;
            }
            Ok(Left::Worked(Outcome::Paused, lease)) => {
                // Paused for shutdown: hand the job back, ready for the next start.
                self.store.release_session(&lease).await?;
                self.store.release_job(job).await?;
                return Ok(run);
            }
            Ok(Left::Absorbed(latest, lease)) => {
                self.store.release_session(&lease).await?;
                self.store.complete_job(job).await?;
                return Ok(*latest);
            }
            Ok(Left::Worked(Outcome::Completed, lease)) => {
                (RunStatus::Completed, None, Some(lease))
            }
            Ok(Left::Worked(Outcome::Failed(why), lease)) => {
                (RunStatus::Failed, Some(why), Some(lease))
            }
            Ok(Left::Worked(Outcome::Cancelled(why), lease)) => {
                let why = driving.stop_reason().unwrap_or(why);
                (RunStatus::Cancelled, Some(why), Some(lease))
            }
            Ok(Left::Unstarted(why)) => (RunStatus::Failed, Some(why), None),
            Ok(Left::NeverHeld) => {
                let why = driving
                    .stop_reason()
                    .unwrap_or_else(|| "cancelled while waiting for the session".into());
                (RunStatus::Cancelled, Some(why), None)
            }
            Err(e) => return self.fail_on_error(job, run, e, events).await,
        };
        let ended = self.finish(&mut run, status, reason, events).await;
        self.end_job(job, lease.as_ref(), ended).await
    }

    /// A turn that stopped on an error ends as failed with it; the error
    /// is what the caller gets. Should its end not be recorded either, the
    /// job is left to its lease.
    async fn fail_on_error(
        &self,
        job: &Job,
        mut run: RunRecord,
        e: RuntimeError,
        events: Events<'_>,
    ) -> Result<RunRecord, RuntimeError> {
        let ended = self
            .finish(&mut run, RunStatus::Failed, Some(e.to_string()), events)
            .await;
        match ended {
            Ok(_) => self.store.complete_job(job).await.map(drop)?,
            Err(record) => tracing::error!(run = %run.id, error = %record, cause = %e,
                "cannot record the run as failed; it is driven again when its job's lease lapses"),
        }
        Err(e)
    }

    /// After an end was recorded: completes the job (the end's commit
    /// freed the session). An end not recorded leaves the job to its lease
    /// and gives the session back, so the next turn need not wait for it.
    async fn end_job(
        &self,
        job: &Job,
        lease: Option<&SessionLease>,
        ended: Result<RunRecord, RuntimeError>,
    ) -> Result<RunRecord, RuntimeError> {
        if ended.is_err()
            && let Some(lease) = lease
            && let Err(e) = self.store.release_session(lease).await
        {
            tracing::warn!(session = %lease.session_id(), error = %e, "could not release session");
        }
        let run = ended?;
        self.store.complete_job(job).await?;
        Ok(run)
    }

    /// Cooling down: the job goes back for when the provider takes calls
    /// again (the latest end any run recorded); the session is free
    /// meanwhile.
    async fn cool_down(
        &self,
        job: &Job,
        mut run: RunRecord,
        lease: &SessionLease,
        events: Events<'_>,
    ) -> Result<RunRecord, RuntimeError> {
        let (until, reason) = self
            .store
            .provider_cooldown(self.provider.name(), now_ms())
            .await?
            .unwrap_or_else(|| (now_ms(), String::new()));
        run.status = RunStatus::Queued;
        self.store.update_run(&run).await?;
        self.store.release_session(lease).await?;
        self.store.release_job_until(job, until).await?;
        events(RunEvent::CoolingDown { until, reason });
        Ok(run)
    }
}
