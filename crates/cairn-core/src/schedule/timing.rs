//! When a schedule's occurrences fall: cron in a zone, intervals, instants.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, TimeZone, Utc};

use super::{ScheduleError, ScheduleKind};

/// An IANA zone by name.
pub(crate) fn zone(tz: &str) -> Result<chrono_tz::Tz, ScheduleError> {
    chrono_tz::Tz::from_str(tz.trim()).map_err(|_| ScheduleError::TimeZone(tz.to_string()))
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
    fn bad_specs_say_what_is_expected() {
        let e = Timing::parse(ScheduleKind::Cron, "61 * * * *", "UTC", 0).unwrap_err();
        assert!(e.to_string().contains("five fields"), "{e}");
        let e = Timing::parse(ScheduleKind::Cron, "0 8 * * *", "Mars/Olympus", 0).unwrap_err();
        assert!(e.to_string().contains("IANA"), "{e}");
        assert!(Timing::parse(ScheduleKind::At, "tomorrow", "UTC", 0).is_err());
    }
}
