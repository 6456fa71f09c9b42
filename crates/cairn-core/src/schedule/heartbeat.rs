//! The heartbeat's gates: quiet hours and the local day of its cost cap.

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::ScheduleError;
use super::timing::zone;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc)
            .unwrap()
            .timestamp_millis()
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
}
