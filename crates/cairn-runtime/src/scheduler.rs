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
use cairn_store::ScheduleFire;

use crate::{Runtime, RuntimeError};

/// How late a due time may be handled and still count as on time.
pub const ON_TIME_GRACE_MS: i64 = 120_000;

/// What a heartbeat run is told before its checklist.
pub const HEARTBEAT_PROMPT: &str = "Heartbeat: this is your periodic self-check. Go through the checklist below. \
Act only where something needs doing; if nothing does, answer just HEARTBEAT_OK.";

/// Most missed occurrences counted one by one (beyond, the count says "at
/// least").
const MISSED_COUNT_CAP: usize = 10_000;

/// Where the scheduler finds the agents it wakes.
#[async_trait]
pub trait AgentSource: Send + Sync {
    /// The agent named `name`, or why it is not available.
    async fn agent(&self, name: &str) -> Result<AgentSpec, String>;
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
        let record = |due_at: i64, outcome: FireOutcome, reason: Option<String>| FireRecord {
            schedule_id: s.id.clone(),
            due_at,
            handled_at: now,
            outcome,
            reason,
            run_id: None,
        };
        let timing = match s.timing() {
            Ok(t) => t,
            Err(e) => {
                // Stored by an older version or edited by hand: disable it,
                // saying why, rather than fail every tick.
                let fire = ScheduleFire {
                    schedule_id: &s.id,
                    expected_due: due,
                    next_due: None,
                    records: vec![record(
                        due,
                        FireOutcome::Skipped,
                        Some(format!("schedule disabled: {e}")),
                    )],
                    run: None,
                };
                self.store.fire_schedule(fire).await?;
                report.not_run += 1;
                return Ok(());
            }
        };
        let (count, last) = timing.occurrences(due - 1, now, MISSED_COUNT_CAP);
        let latest = last.unwrap_or(due).max(due);
        let next_due = timing.next_after(now);
        let on_time = count <= 1 && now - due <= ON_TIME_GRACE_MS;
        let many = if count >= MISSED_COUNT_CAP {
            format!("at least {count}")
        } else {
            count.to_string()
        };
        let missed_note = format!(
            "{many} occurrence(s) from {} to {} passed while no scheduler was running",
            iso(due),
            iso(latest)
        );

        let mut records = Vec::new();
        if !on_time && latest != due {
            records.push(record(
                due,
                FireOutcome::Missed,
                Some(format!("{missed_note}; recorded at {}", iso(latest))),
            ));
        }
        let key = if on_time { due } else { latest };
        let agent = agents.agent(&s.agent).await;
        // The agent and the prompt to run with (a heartbeat's checklist
        // replaces it), or why nothing runs.
        let decision: Result<(&AgentSpec, Option<String>), String> = match (&agent, &s.heartbeat) {
            _ if !on_time && s.catch_up == CatchUp::Skip => {
                Err(format!("{missed_note}; catch_up = skip"))
            }
            (Err(why), _) => Err(format!("agent {:?} is not available: {why}", s.agent)),
            (Ok(a), Some(p)) => self.heartbeat_gate(s, p, now).await?.map(|c| (a, Some(c))),
            (Ok(a), None) => Ok((a, None)),
        };
        let mut run = None;
        match decision {
            Ok((agent, checklist)) => {
                let mut r = self.queued_run(
                    agent,
                    s.session_id.clone(),
                    checklist.unwrap_or_else(|| s.prompt.clone()),
                    now,
                );
                if let Some(m) = s.heartbeat.as_ref().and_then(|p| p.model.clone()) {
                    r.model = m;
                }
                // A fire works for whoever made the schedule, whatever
                // session it runs in.
                r.user_id = s.user_id.clone();
                let mut fired = record(
                    key,
                    FireOutcome::Fired,
                    (!on_time).then(|| format!("{missed_note}; catch_up = once: ran once")),
                );
                fired.run_id = Some(r.id.clone());
                records.push(fired);
                run = Some(r);
            }
            Err(why) => records.push(record(key, FireOutcome::Skipped, Some(why))),
        }
        let not_run = records
            .iter()
            .filter(|r| r.outcome != FireOutcome::Fired)
            .count();
        let fire = ScheduleFire {
            schedule_id: &s.id,
            expected_due: due,
            next_due,
            records,
            run: run.as_ref(),
        };
        if self.store.fire_schedule(fire).await? {
            // Downtime is news to the owner (a heartbeat's gates are not).
            if !on_time
                && s.heartbeat.is_none()
                && let Ok(agent) = &agent
            {
                let action = match s.catch_up {
                    CatchUp::Once => "ran it once now",
                    CatchUp::Skip => "skipped them (catch_up = skip)",
                };
                let text = format!(
                    "schedule {} (\"{}\"): {missed_note}; {action}",
                    s.id,
                    short(&s.prompt, 60)
                );
                self.notify_owner(agent, &text).await;
            }
            report.not_run += not_run;
            if let Some(r) = run {
                tracing::info!(schedule = %s.id, run = %r.id, "schedule fired");
                report.fired.push(r.id);
            }
        } else {
            report.lost_races += 1;
        }
        Ok(())
    }

    /// Whether a heartbeat may run now: its prompt (the agent's checklist),
    /// or why not.
    async fn heartbeat_gate(
        &self,
        s: &ScheduleRecord,
        p: &HeartbeatPolicy,
        now: i64,
    ) -> Result<Result<String, String>, RuntimeError> {
        if p.is_quiet(now) {
            return Ok(Err(format!(
                "quiet hours ({} {})",
                p.quiet_hours.as_deref().unwrap_or(""),
                p.tz
            )));
        }
        let active = self.store.last_person_activity(&s.agent).await?;
        if active.is_none_or(|t| now - t > p.idle_after_ms) {
            return Ok(Err(format!(
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
            return Ok(Err(format!(
                "daily cost cap reached: ${spent:.4} spent today of ${:.4} (heartbeat max_daily_usd)",
                p.max_daily_usd
            )));
        }
        let path = self
            .home
            .as_deref()
            .map(|h| h.join("agents").join(&s.agent).join("HEARTBEAT.md"));
        let checklist = path
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .filter(|t| !t.trim().is_empty());
        match checklist {
            Some(c) => Ok(Ok(format!("{HEARTBEAT_PROMPT}\n\n{}", c.trim()))),
            None => Ok(Err(format!(
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
