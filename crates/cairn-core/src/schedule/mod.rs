//! Schedules: when an agent is woken with a prompt. Cron expressions read
//! in a time zone (DST-correct: a 02:30 job on a spring-forward night runs
//! at the first real instant after the gap, once), fixed intervals, and
//! one-shot instants. Pure computation; the store keeps them and the
//! runtime fires them.

mod heartbeat;
mod timing;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use heartbeat::HeartbeatPolicy;
pub use timing::{Timing, parse_interval};

/// How a schedule's times are given.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// A cron expression (5 fields, or 6 with seconds) in a time zone.
    Cron,
    /// Every fixed interval (`90s`, `15m`, `1h30m`, `1d`) from creation.
    Every,
    /// Once, at an RFC 3339 instant.
    At,
}

impl ScheduleKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleKind::Cron => "cron",
            ScheduleKind::Every => "every",
            ScheduleKind::At => "at",
        }
    }

    /// The one of a cron expression, an interval and an instant that is
    /// given; `None` when none or several are.
    pub fn one_of(
        cron: Option<String>,
        every: Option<String>,
        at: Option<String>,
    ) -> Option<(ScheduleKind, String)> {
        match (cron, every, at) {
            (Some(c), None, None) => Some((ScheduleKind::Cron, c)),
            (None, Some(e), None) => Some((ScheduleKind::Every, e)),
            (None, None, Some(a)) => Some((ScheduleKind::At, a)),
            _ => None,
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<ScheduleKind> {
        Some(match s {
            "cron" => ScheduleKind::Cron,
            "every" => ScheduleKind::Every,
            "at" => ScheduleKind::At,
            _ => return None,
        })
    }
}

/// What to do about occurrences missed while no scheduler ran.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run once for all that was missed (the default).
    #[default]
    Once,
    /// Run nothing for them; wait for the next occurrence.
    Skip,
}

impl CatchUp {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Once => "once",
            CatchUp::Skip => "skip",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<CatchUp> {
        match s {
            "once" => Some(CatchUp::Once),
            "skip" => Some(CatchUp::Skip),
            _ => None,
        }
    }
}

/// A schedule as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// Id (`sch_…`).
    pub id: String,
    /// Agent woken.
    pub agent: String,
    /// Session the runs go to.
    pub session_id: String,
    /// The message each run starts with.
    pub prompt: String,
    /// How the times are given.
    pub kind: ScheduleKind,
    /// The cron expression, interval or instant.
    pub spec: String,
    /// IANA time zone the cron expression is read in.
    pub tz: String,
    /// Policy for occurrences missed during downtime.
    pub catch_up: CatchUp,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// Next occurrence (ms since epoch); `None` once a one-shot has fired.
    pub next_due: Option<i64>,
    /// Creation time (ms), also the anchor of intervals.
    pub created_at: i64,
    /// Who created it: `cli`, `api`, `config`, `heartbeat` or `agent:<run id>`.
    pub created_by: String,
    /// The person it belongs to (`None`: the local owner); only they see
    /// it through the schedule tools.
    #[serde(default)]
    pub user_id: Option<String>,
    /// For an agent's heartbeat: the conditions checked before each fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatPolicy>,
}

/// What a new schedule is made of (from the CLI, the API, config or an agent).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSchedule {
    /// Agent to wake.
    pub agent: String,
    /// Session for its runs; `sched-<id>` when absent.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The message each run starts with.
    pub prompt: String,
    /// How the times are given.
    pub kind: ScheduleKind,
    /// The cron expression, interval (`15m`) or RFC 3339 instant.
    pub spec: String,
    /// Time zone of a cron expression (default UTC).
    #[serde(default)]
    pub tz: Option<String>,
    /// Policy for occurrences missed during downtime (default `once`).
    #[serde(default)]
    pub catch_up: CatchUp,
}

impl ScheduleRecord {
    /// Checks `new` and gives the schedule with its first occurrence after
    /// `now`. A one-shot in the past is refused.
    pub fn create(
        new: NewSchedule,
        id: String,
        created_by: &str,
        now: i64,
    ) -> Result<ScheduleRecord, ScheduleError> {
        if new.prompt.trim().is_empty() {
            return Err(ScheduleError::Prompt);
        }
        let tz = new.tz.unwrap_or_else(|| "UTC".to_string());
        let timing = Timing::parse(new.kind, &new.spec, &tz, now)?;
        let next_due = timing.next_after(now);
        if next_due.is_none() {
            return Err(ScheduleError::NeverDue(new.spec));
        }
        Ok(ScheduleRecord {
            session_id: new
                .session_id
                .unwrap_or_else(|| format!("sched-{}", id.trim_start_matches("sch_"))),
            id,
            agent: new.agent,
            prompt: new.prompt,
            kind: new.kind,
            spec: new.spec.trim().to_string(),
            tz,
            catch_up: new.catch_up,
            paused: false,
            next_due,
            created_at: now,
            created_by: created_by.to_string(),
            user_id: None,
            heartbeat: None,
        })
    }

    /// The schedule's times.
    pub fn timing(&self) -> Result<Timing, ScheduleError> {
        Timing::parse(self.kind, &self.spec, &self.tz, self.created_at)
    }

    /// Where a resumed schedule continues: its next occurrence after
    /// `now`. What passed while it was paused is not caught up: pausing
    /// means "not now".
    pub fn next_due_on_resume(&self, now: i64) -> Result<Option<i64>, ScheduleError> {
        Ok(self.timing()?.next_after(now))
    }
}

/// What happened at one due time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FireOutcome {
    /// A run was started.
    Fired,
    /// Occurrences passed while no scheduler was running.
    Missed,
    /// Not run on purpose (catch-up policy `skip`, or the agent is gone).
    Skipped,
}

impl FireOutcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FireOutcome::Fired => "fired",
            FireOutcome::Missed => "missed",
            FireOutcome::Skipped => "skipped",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<FireOutcome> {
        Some(match s {
            "fired" => FireOutcome::Fired,
            "missed" => FireOutcome::Missed,
            "skipped" => FireOutcome::Skipped,
            _ => return None,
        })
    }
}

/// One recorded due time of a schedule; `(schedule_id, due_at)` is unique,
/// which is what makes a fire happen exactly once.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FireRecord {
    /// Schedule.
    pub schedule_id: String,
    /// The occurrence (ms since epoch).
    pub due_at: i64,
    /// When it was handled (ms).
    pub handled_at: i64,
    /// What happened.
    pub outcome: FireOutcome,
    /// Why, for anything but an on-time fire.
    pub reason: Option<String>,
    /// The run started, when fired.
    pub run_id: Option<String>,
}

/// A schedule that cannot be understood.
#[derive(Debug, Error, PartialEq)]
pub enum ScheduleError {
    /// Bad cron expression.
    #[error(
        "invalid cron expression {expr:?}: {reason} (five fields: minute hour day-of-month month day-of-week, e.g. \"0 8 * * 1-5\")"
    )]
    Cron {
        /// The expression.
        expr: String,
        /// What the parser said.
        reason: String,
    },
    /// Unknown time zone.
    #[error("unknown time zone {0:?}: use an IANA name such as \"Europe/Paris\" or \"UTC\"")]
    TimeZone(String),
    /// Bad interval.
    #[error(
        "invalid interval {0:?}: use a number with s, m, h or d, such as \"90s\", \"15m\", \"1h30m\" (from 1s to 3650d)"
    )]
    Interval(String),
    /// Bad instant.
    #[error("invalid time {0:?}: use RFC 3339, such as \"2026-12-01T08:00:00+01:00\"")]
    Instant(String),
    /// Nothing to say.
    #[error("a schedule needs a prompt: the message each run starts with")]
    Prompt,
    /// Bad quiet hours.
    #[error("invalid quiet hours {0:?}: use HH:MM-HH:MM, such as \"22:00-07:00\"")]
    QuietHours(String),
    /// A schedule that would never fire.
    #[error("{0:?} has no occurrence in the future")]
    NeverDue(String),
}
