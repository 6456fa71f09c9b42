//! Schedules: when an agent is woken with a prompt. Cron expressions read
//! in a time zone (DST-correct: a 02:30 job on a spring-forward night runs
//! at the first real instant after the gap, once), fixed intervals, and
//! one-shot instants. Pure computation; the store keeps them and the
//! runtime fires them.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

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
    /// For an agent's heartbeat: the conditions checked before each fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatPolicy>,
}

/// When an agent's periodic self-check may run. Idle agents must never
/// quietly burn money: it is skipped (and the skip recorded) in quiet
/// hours, when nobody has used the agent for a while, and once its runs
/// today have cost the cap.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatPolicy {
    /// `HH:MM-HH:MM` in `tz` (may wrap midnight); none when absent.
    #[serde(default)]
    pub quiet_hours: Option<String>,
    /// Time zone of the quiet hours and of "today" for the cap.
    pub tz: String,
    /// Dollars the heartbeat's runs may cost per day.
    pub max_daily_usd: f64,
    /// Skip when no person has started a run of the agent for this long (ms).
    pub idle_after_ms: i64,
    /// Model for the heartbeat's runs (a cheap or local one); the agent's when absent.
    #[serde(default)]
    pub model: Option<String>,
}

impl HeartbeatPolicy {
    /// Checks the policy's own fields.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        zone(&self.tz)?;
        if let Some(q) = &self.quiet_hours {
            quiet_window(q)?;
        }
        Ok(())
    }

    /// Whether `now_ms` is inside the quiet hours.
    pub fn is_quiet(&self, now_ms: i64) -> bool {
        let (Some(q), Ok(tz)) = (&self.quiet_hours, zone(&self.tz)) else {
            return false;
        };
        let Ok((from, to)) = quiet_window(q) else {
            return false;
        };
        let Some(t) = Utc.timestamp_millis_opt(now_ms).single() else {
            return false;
        };
        use chrono::Timelike;
        let local = t.with_timezone(&tz);
        let minute = local.hour() * 60 + local.minute();
        if from <= to {
            (from..to).contains(&minute)
        } else {
            minute >= from || minute < to
        }
    }

    /// Start of the local day containing `now_ms` (ms).
    pub fn day_start(&self, now_ms: i64) -> i64 {
        let Ok(tz) = zone(&self.tz) else {
            return now_ms - now_ms.rem_euclid(86_400_000);
        };
        let Some(t) = Utc.timestamp_millis_opt(now_ms).single() else {
            return now_ms;
        };
        let local = t.with_timezone(&tz).date_naive();
        local
            .and_hms_opt(0, 0, 0)
            .and_then(|midnight| tz.from_local_datetime(&midnight).earliest())
            .map(|d| d.timestamp_millis())
            .unwrap_or(now_ms - now_ms.rem_euclid(86_400_000))
    }
}

fn zone(tz: &str) -> Result<chrono_tz::Tz, ScheduleError> {
    chrono_tz::Tz::from_str(tz.trim()).map_err(|_| ScheduleError::TimeZone(tz.to_string()))
}

/// `22:00-07:00` → minutes of the day (from, to).
fn quiet_window(text: &str) -> Result<(u32, u32), ScheduleError> {
    let bad = || ScheduleError::QuietHours(text.to_string());
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let minutes = |hm: &str| -> Result<u32, ScheduleError> {
        let (h, m) = hm.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    Ok((minutes(a)?, minutes(b)?))
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
            heartbeat: None,
        })
    }

    /// The schedule's times.
    pub fn timing(&self) -> Result<Timing, ScheduleError> {
        Timing::parse(self.kind, &self.spec, &self.tz, self.created_at)
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

/// A schedule's times, ready to compute the next occurrence.
#[derive(Debug, Clone)]
pub enum Timing {
    /// Cron in a zone.
    Cron(Arc<croner::Cron>, chrono_tz::Tz),
    /// Every `interval_ms` from `anchor_ms`.
    Every {
        /// Interval.
        interval_ms: i64,
        /// First occurrence is one interval after this.
        anchor_ms: i64,
    },
    /// Once.
    At(i64),
}

impl Timing {
    /// Parses `spec` of `kind` (`tz` for cron; `anchor_ms` for intervals).
    pub fn parse(
        kind: ScheduleKind,
        spec: &str,
        tz: &str,
        anchor_ms: i64,
    ) -> Result<Timing, ScheduleError> {
        match kind {
            ScheduleKind::Cron => {
                let zone = zone(tz)?;
                Ok(Timing::Cron(parse_cron(spec.trim())?, zone))
            }
            ScheduleKind::Every => Ok(Timing::Every {
                interval_ms: parse_interval(spec)?,
                anchor_ms,
            }),
            ScheduleKind::At => DateTime::parse_from_rfc3339(spec.trim())
                .map(|t| Timing::At(t.timestamp_millis()))
                .map_err(|_| ScheduleError::Instant(spec.to_string())),
        }
    }

    /// The first occurrence strictly after `after_ms`; `None` when there
    /// is none (a one-shot in the past, an impossible date).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Timing::Cron(cron, zone) => {
                let after = Utc.timestamp_millis_opt(after_ms).single()?;
                cron.find_next_occurrence(&after.with_timezone(zone), false)
                    .ok()
                    .map(|t| t.timestamp_millis())
            }
            Timing::Every {
                interval_ms,
                anchor_ms,
            } => {
                let k = if after_ms < *anchor_ms {
                    1
                } else {
                    (after_ms - anchor_ms) / interval_ms + 1
                };
                Some(anchor_ms + k * interval_ms)
            }
            Timing::At(at) => (*at > after_ms).then_some(*at),
        }
    }

    /// Occurrences in `(after_ms, until_ms]`, counted up to `cap`, and the
    /// last of them.
    pub fn occurrences(&self, after_ms: i64, until_ms: i64, cap: usize) -> (usize, Option<i64>) {
        if let Timing::Every {
            interval_ms,
            anchor_ms,
        } = self
        {
            // Closed form: an every-second schedule after a week away is
            // 600,000 occurrences, not a loop.
            let count_to = |t: i64| {
                if t < *anchor_ms {
                    0
                } else {
                    (t - anchor_ms) / interval_ms
                }
            };
            let n = (count_to(until_ms) - count_to(after_ms)).max(0);
            let last = (n > 0).then(|| anchor_ms + count_to(until_ms) * interval_ms);
            return (n as usize, last);
        }
        let mut n = 0;
        let mut last = None;
        let mut t = after_ms;
        while let Some(next) = self.next_after(t) {
            if next > until_ms {
                break;
            }
            n += 1;
            last = Some(next);
            t = next;
            if n >= cap {
                // Count no further, but name the real last one.
                last = self.previous_at_or_before(until_ms).or(last);
                break;
            }
        }
        (n, last)
    }

    fn previous_at_or_before(&self, t: i64) -> Option<i64> {
        match self {
            Timing::Cron(cron, zone) => {
                let at = Utc.timestamp_millis_opt(t).single()?;
                cron.find_previous_occurrence(&at.with_timezone(zone), true)
                    .ok()
                    .map(|x| x.timestamp_millis())
            }
            Timing::At(at) => (*at <= t).then_some(*at),
            Timing::Every { .. } => None,
        }
    }
}

/// Parsed cron expressions by text. Parsing one costs about 13 µs (croner
/// builds and checks every field); schedules repeat expressions a lot
/// ("0 8 * * *"), and a tick re-reads each due one.
fn parse_cron(expr: &str) -> Result<Arc<croner::Cron>, ScheduleError> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<croner::Cron>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().ok().and_then(|m| m.get(expr).cloned()) {
        return Ok(c);
    }
    let cron = Arc::new(
        croner::Cron::from_str(expr).map_err(|e| ScheduleError::Cron {
            expr: expr.to_string(),
            reason: e.to_string(),
        })?,
    );
    if let Ok(mut m) = cache.lock() {
        if m.len() >= 4096 {
            m.clear();
        }
        m.insert(expr.to_string(), cron.clone());
    }
    Ok(cron)
}

/// `90s`, `15m`, `1h30m`, `2d` → milliseconds.
pub fn parse_interval(text: &str) -> Result<i64, ScheduleError> {
    let bad = || ScheduleError::Interval(text.to_string());
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    // At most ten years: keeps every later sum far from overflowing.
    if !digits.is_empty() || !(1_000..=3650 * 86_400_000).contains(&total) {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc)
            .unwrap()
            .timestamp_millis()
    }

    fn cron(expr: &str, tz: &str) -> Timing {
        Timing::parse(ScheduleKind::Cron, expr, tz, 0).unwrap()
    }

    #[test]
    fn cron_in_a_zone_follows_its_clock_across_dst() {
        // 08:00 in Paris: UTC+1 in winter, UTC+2 in summer.
        let t = cron("0 8 * * *", "Europe/Paris");
        assert_eq!(
            t.next_after(ms("2026-03-28T12:00:00Z")),
            Some(ms("2026-03-29T06:00:00Z")),
            "the morning after spring-forward is 06:00 UTC"
        );
        assert_eq!(
            t.next_after(ms("2026-03-27T12:00:00Z")),
            Some(ms("2026-03-28T07:00:00Z"))
        );
        // 02:30 does not exist on 2026-03-29 in Paris: it runs once, at the
        // first instant after the gap, and the next day at 02:30 again.
        let gap = cron("30 2 * * *", "Europe/Paris");
        let first = gap.next_after(ms("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(first, ms("2026-03-29T03:00:00+02:00"));
        assert_eq!(gap.next_after(first), Some(ms("2026-03-30T02:30:00+02:00")));
        // 02:30 happens twice on 2026-10-25 (fall back): it runs once.
        let fall = gap.next_after(ms("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(fall, ms("2026-10-25T02:30:00+02:00"));
        let after = gap.next_after(fall).unwrap();
        assert_eq!(
            after,
            ms("2026-10-26T02:30:00+01:00"),
            "not again an hour later"
        );
    }

    #[test]
    fn intervals_and_one_shots() {
        let every = Timing::parse(ScheduleKind::Every, "15m", "UTC", 1_000).unwrap();
        assert_eq!(every.next_after(1_000), Some(1_000 + 900_000));
        assert_eq!(every.next_after(1_000 + 900_000), Some(1_000 + 1_800_000));
        let (n, last) = every.occurrences(1_000, 1_000 + 7 * 86_400_000, 10);
        assert_eq!(n, 7 * 96);
        assert_eq!(last, Some(1_000 + 7 * 86_400_000));
        let at = Timing::parse(ScheduleKind::At, "2026-12-01T08:00:00+01:00", "UTC", 0).unwrap();
        assert_eq!(
            at.next_after(ms("2026-11-30T00:00:00Z")),
            Some(ms("2026-12-01T07:00:00Z"))
        );
        assert_eq!(at.next_after(ms("2026-12-02T00:00:00Z")), None);
        assert_eq!(parse_interval("1h30m"), Ok(5_400_000));
        for bad in [
            "",
            "5",
            "0s",
            "5x",
            "m",
            "999ms",
            "3651d",
            "99999999999999999d",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counting_missed_occurrences_is_bounded() {
        let t = cron("* * * * *", "UTC");
        let (n, last) = t.occurrences(ms("2026-11-01T00:00:00Z"), ms("2026-11-08T00:00:00Z"), 50);
        assert_eq!(n, 50);
        assert_eq!(last, Some(ms("2026-11-08T00:00:00Z")));
        let (n, last) = t.occurrences(ms("2026-11-01T00:00:00Z"), ms("2026-11-01T00:03:30Z"), 50);
        assert_eq!((n, last), (3, Some(ms("2026-11-01T00:03:00Z"))));
    }

    #[test]
    fn heartbeat_quiet_hours_and_days_are_local() {
        let p = HeartbeatPolicy {
            quiet_hours: Some("22:00-07:00".into()),
            tz: "Europe/Paris".into(),
            max_daily_usd: 0.1,
            idle_after_ms: 86_400_000,
            model: None,
        };
        assert!(p.validate().is_ok());
        assert!(p.is_quiet(ms("2026-11-26T22:30:00+01:00")));
        assert!(p.is_quiet(ms("2026-11-27T06:59:00+01:00")));
        assert!(!p.is_quiet(ms("2026-11-27T07:00:00+01:00")));
        assert!(!p.is_quiet(ms("2026-11-26T12:00:00Z")));
        assert_eq!(
            p.day_start(ms("2026-11-26T23:30:00Z")),
            ms("2026-11-27T00:00:00+01:00")
        );
        let bad = HeartbeatPolicy {
            quiet_hours: Some("25:00-07:00".into()),
            ..p
        };
        assert!(bad.validate().unwrap_err().to_string().contains("HH:MM"));
    }

    #[test]
    fn bad_specs_say_what_is_expected() {
        let e = Timing::parse(ScheduleKind::Cron, "61 * * * *", "UTC", 0).unwrap_err();
        assert!(e.to_string().contains("five fields"), "{e}");
        let e = Timing::parse(ScheduleKind::Cron, "0 8 * * *", "Mars/Olympus", 0).unwrap_err();
        assert!(e.to_string().contains("IANA"), "{e}");
        assert!(Timing::parse(ScheduleKind::At, "tomorrow", "UTC", 0).is_err());
    }
}
