//! The scheduler: turns due schedules into queued runs, exactly once per
//! (schedule, due time). Time is a parameter (`now`), so tests drive it
//! with any clock; the server calls [`Runtime::scheduler_tick`] every
//! second with the real one.
//!
//! Occurrences that passed while no scheduler ran are never silent: with
//! `catch_up = once` (the default) one run covers them and the fire record
//! says how many and since when; with `skip` they are recorded as skipped.

use async_trait::async_trait;
use cairn_core::AgentSpec;
use cairn_core::schedule::{CatchUp, FireOutcome, FireRecord, HeartbeatPolicy, ScheduleRecord};
use cairn_store::{ScheduleFire, StoreError};

use crate::{Runtime, RuntimeError};

/// How late a due time may be handled and still count as on time.
pub const ON_TIME_GRACE_MS: i64 = 120_000;

/// What a heartbeat run is told before its checklist.
pub const HEARTBEAT_PROMPT: &str = "Heartbeat: this is your periodic self-check. Go through the checklist below. \
Act only where something needs doing; if nothing does, answer just HEARTBEAT_OK.";

/// Most missed occurrences counted one by one (beyond, the count says "at
/// least").
const MISSED_COUNT_CAP: usize = 10_000;

/// What a fire does.
enum Decision {
    /// Starts this run.
    Start(Box<cairn_core::RunRecord>),
    /// Runs nothing, for this reason (recorded as skipped).
    Skip(String),
}

/// Whether a heartbeat may run now.
enum Gate {
    /// Yes, with this prompt (the agent's checklist).
    Open(String),
    /// No, for this reason.
    Closed(String),
}

/// When a due schedule is handled, against when it was due.
struct When {
    /// The newest occurrence that passed (the due time itself if none).
    latest: i64,
    /// The next occurrence after now.
    next_due: Option<i64>,
    /// Handled within the grace, with no occurrence missed.
    on_time: bool,
    /// The occurrence the fire is recorded under.
    key: i64,
    /// What passed while no scheduler ran, in words.
    missed: String,
}

impl When {
    fn new(timing: &cairn_core::schedule::Timing, due: i64, now: i64) -> When {
        let (count, last) = timing.occurrences(due - 1, now, MISSED_COUNT_CAP);
        let latest = last.unwrap_or(due).max(due);
        let on_time = count <= 1 && now - due <= ON_TIME_GRACE_MS;
        let many = if count >= MISSED_COUNT_CAP {
            format!("at least {count}")
        } else {
            count.to_string()
        };
        When {
            latest,
            next_due: timing.next_after(now),
            on_time,
            key: if on_time { due } else { latest },
            missed: format!(
                "{many} occurrence(s) from {} to {} passed while no scheduler was running",
                iso(due),
                iso(latest)
            ),
        }
    }
}

/// A fire record of `s` for `due_at`, handled at `now`.
fn fire_record(
    s: &ScheduleRecord,
    due_at: i64,
    now: i64,
    outcome: FireOutcome,
    reason: Option<String>,
) -> FireRecord {
    FireRecord {
        schedule_id: s.id.clone(),
        due_at,
        handled_at: now,
        outcome,
        reason,
        run_id: None,
    }
}

/// Where the scheduler finds the agents it wakes.
#[async_trait]
pub trait AgentSource: Send + Sync {
    /// The agent named `name`, `None` when there is none. A store error is
    /// returned as one: the tick fails and the fire is tried again at the
    /// next, rather than recorded as skipped.
    async fn agent(&self, name: &str) -> Result<Option<AgentSpec>, StoreError>;
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickReport {
    /// Runs started.
    pub fired: Vec<String>,
    /// Due times recorded as missed or skipped.
    pub not_run: usize,
    /// Due times another scheduler handled first.
    pub lost_races: usize,
}

impl Runtime {
    /// Handles every schedule due at `now`.
    pub async fn scheduler_tick(
        &self,
        now: i64,
        agents: &dyn AgentSource,
    ) -> Result<TickReport, RuntimeError> {
        let mut report = TickReport::default();
        for s in self.store.due_schedules(now).await? {
            self.fire_one(&s, now, agents, &mut report).await?;
        }
        Ok(report)
    }

    async fn fire_one(
        &self,
        s: &ScheduleRecord,
        now: i64,
        agents: &dyn AgentSource,
        report: &mut TickReport,
    ) -> Result<(), RuntimeError> {
        let Some(due) = s.next_due else {
            return Ok(());
        };
        let timing = match s.timing() {
            Ok(t) => t,
            Err(e) => return self.disable(s, due, now, &e.to_string(), report).await,
        };
        let when = When::new(&timing, due, now);
        let mut records = Vec::new();
        if !when.on_time && when.latest != due {
            let note = format!("{}; recorded at {}", when.missed, iso(when.latest));
            records.push(fire_record(s, due, now, FireOutcome::Missed, Some(note)));
        }
        let agent = agents.agent(&s.agent).await?;
        let run = match self.decide(s, agent.as_ref(), &when, now).await? {
            Decision::Start(run) => {
                let note =
                    (!when.on_time).then(|| format!("{}; catch_up = once: ran once", when.missed));
                let mut fired = fire_record(s, when.key, now, FireOutcome::Fired, note);
                fired.run_id = Some(run.id.clone());
                records.push(fired);
                Some(*run)
            }
            Decision::Skip(why) => {
                records.push(fire_record(
                    s,
                    when.key,
                    now,
                    FireOutcome::Skipped,
                    Some(why),
                ));
                None
            }
        };
        let not_run = records
            .iter()
            .filter(|r| r.outcome != FireOutcome::Fired)
            .count();
        let fire = ScheduleFire {
            schedule_id: &s.id,
            expected_due: due,
            next_due: when.next_due,
            records,
            run: run.as_ref(),
        };
        if !self.store.fire_schedule(fire).await? {
            report.lost_races += 1;
            return Ok(());
        }
        // Downtime is news to the owner (a heartbeat's gates are not).
        if let Some(agent) = &agent
            && !when.on_time
            && s.heartbeat.is_none()
        {
            self.tell_downtime(s, agent, &when).await;
        }
        report.not_run += not_run;
        if let Some(r) = run {
            tracing::info!(schedule = %s.id, run = %r.id, "schedule fired");
            report.fired.push(r.id);
        }
        Ok(())
    }

    /// A schedule whose timing cannot be read (stored by an older version
    /// or edited by hand) is disabled, saying why, rather than failing
    /// every tick.
    async fn disable(
        &self,
        s: &ScheduleRecord,
        due: i64,
        now: i64,
        why: &str,
        report: &mut TickReport,
    ) -> Result<(), RuntimeError> {
        let reason = Some(format!("schedule disabled: {why}"));
        let fire = ScheduleFire {
            schedule_id: &s.id,
            expected_due: due,
            next_due: None,
            records: vec![fire_record(s, due, now, FireOutcome::Skipped, reason)],
            run: None,
        };
        self.store.fire_schedule(fire).await?;
        report.not_run += 1;
        Ok(())
    }

    /// The run to start for this fire (a heartbeat's checklist replaces
    /// the prompt), or why nothing runs.
    async fn decide(
        &self,
        s: &ScheduleRecord,
        agent: Option<&AgentSpec>,
        when: &When,
        now: i64,
    ) -> Result<Decision, RuntimeError> {
        let (agent, checklist) = match (agent, &s.heartbeat) {
            _ if !when.on_time && s.catch_up == CatchUp::Skip => {
                return Ok(Decision::Skip(format!("{}; catch_up = skip", when.missed)));
            }
            (None, _) => {
                return Ok(Decision::Skip(format!(
                    "agent {:?} is not available: it does not exist",
                    s.agent
                )));
            }
            (Some(a), Some(p)) => match self.heartbeat_gate(s, p, now).await? {
                Gate::Open(checklist) => (a, Some(checklist)),
                Gate::Closed(why) => return Ok(Decision::Skip(why)),
            },
            (Some(a), None) => (a, None),
        };
        let prompt = checklist.unwrap_or_else(|| s.prompt.clone());
        let mut run = self.queued_run(agent, s.session_id.clone(), prompt, now);
        if let Some(m) = s.heartbeat.as_ref().and_then(|p| p.model.clone()) {
            run.model = m;
        }
        // A fire works for whoever made the schedule, whatever session it
        // runs in.
        run.user_id = s.user_id.clone();
        Ok(Decision::Start(Box::new(run)))
    }

    /// Tells the agent's owner that occurrences passed while no scheduler
    /// ran, and what was done about them.
    async fn tell_downtime(&self, s: &ScheduleRecord, agent: &AgentSpec, when: &When) {
        let action = match s.catch_up {
            CatchUp::Once => "ran it once now",
            CatchUp::Skip => "skipped them (catch_up = skip)",
        };
        let text = format!(
            "schedule {} (\"{}\"): {}; {action}",
            s.id,
            short(&s.prompt, 60),
            when.missed
        );
        self.notify_owner(agent, &text).await;
    }

    /// Whether a heartbeat may run now: its prompt (the agent's checklist),
    /// or why not.
    async fn heartbeat_gate(
        &self,
        s: &ScheduleRecord,
        p: &HeartbeatPolicy,
        now: i64,
    ) -> Result<Gate, RuntimeError> {
        if p.is_quiet(now) {
            return Ok(Gate::Closed(format!(
                "quiet hours ({} {})",
                p.quiet_hours.as_deref().unwrap_or(""),
                p.tz
            )));
        }
        let active = self.store.last_person_activity(&s.agent).await?;
        if active.is_none_or(|t| now - t > p.idle_after_ms) {
            return Ok(Gate::Closed(format!(
                "nobody has used agent {:?} for {} (heartbeat idle_after)",
                s.agent,
                match active {
                    Some(t) => format!("{} min", (now - t) / 60_000),
                    None => "ever".into(),
                }
            )));
        }
        let spent = self
            .store
            .session_cost_since(&s.session_id, p.day_start(now))
            .await?;
        if spent >= p.max_daily_usd {
            return Ok(Gate::Closed(format!(
                "daily cost cap reached: ${spent:.4} spent today of ${:.4} (heartbeat max_daily_usd)",
                p.max_daily_usd
            )));
        }
        let path = self
            .home()
            .map(|h| h.join("agents").join(&s.agent).join("HEARTBEAT.md"));
        let checklist = path
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .filter(|t| !t.trim().is_empty());
        match checklist {
            Some(c) => Ok(Gate::Open(format!("{HEARTBEAT_PROMPT}\n\n{}", c.trim()))),
            None => Ok(Gate::Closed(format!(
                "no checklist: write {}",
                path.map(|p| p.display().to_string())
                    .unwrap_or_else(|| "$CAIRN_HOME/agents/<agent>/HEARTBEAT.md".into())
            ))),
        }
    }
}

fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A time as people read it in records (UTC, RFC 3339).
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}
