//! Usage limits that are not a plain 429 with `retry-after`: subscription
//! windows and quotas whose message says when they reset ("usage limit
//! reached, resets at 5pm", "try again in 3 hours", Claude's
//! `usage limit reached|<unix time>`). The reset time parsed from the
//! message becomes the wait, so the run cools down until then instead of
//! failing or retrying in vain.

use std::time::Duration;

/// Phrases that mark a usage limit rather than another refusal.
const MARKERS: &[&str] = &[
    "usage limit",
    "limit reached",
    "limit exceeded",
    "quota",
    "rate limit",
    "too many requests",
];

/// The wait until the limit `message` describes resets, if it is one and
/// says when (`now_s`: seconds since the epoch, UTC).
pub fn reset_wait(message: &str, now_s: i64) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    if !MARKERS.iter().any(|m| lower.contains(m)) {
        return None;
    }
    let at = epoch_after_pipe(&lower)
        .or_else(|| rfc3339_in(message))
        .or_else(|| relative(&lower).map(|d| now_s + d))
        .or_else(|| clock_time(&lower, now_s))?;
    (at > now_s).then(|| Duration::from_secs((at - now_s) as u64))
}

/// `…limit reached|1735689600`.
fn epoch_after_pipe(s: &str) -> Option<i64> {
    let (_, tail) = s.rsplit_once('|')?;
    let digits: String = tail
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let t: i64 = digits.parse().ok()?;
    // Seconds, or milliseconds.
    Some(if t > 100_000_000_000 { t / 1000 } else { t })
}

/// The first RFC 3339 instant in the text.
fn rfc3339_in(s: &str) -> Option<i64> {
    s.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .map(|w| w.trim_end_matches(['.', ';']))
        .find_map(|w| chrono::DateTime::parse_from_rfc3339(w).ok())
        .map(|d| d.timestamp())
}

/// `in 3 hours`, `in 45 minutes`, `in 2h 30m`, `in 90 seconds`.
fn relative(s: &str) -> Option<i64> {
    let i = s.find(" in ")?;
    let words: Vec<&str> = s[i + 4..].split_whitespace().take(6).collect();
    let mut total = 0i64;
    let mut found = false;
    let mut k = 0;
    while k < words.len() {
        let w = words[k].trim_end_matches(['.', ',', ';']);
        let (num, unit) = match w.find(|c: char| !c.is_ascii_digit()) {
            Some(0) | None if k + 1 < words.len() => (w, words[k + 1]),
            Some(0) | None => (w, ""),
            Some(j) => (&w[..j], &w[j..]),
        };
        let Ok(n) = num.parse::<i64>() else { break };
        let unit = unit.trim_end_matches(['.', ',', ';']);
        let secs = match unit {
            u if u.starts_with('h') => 3600,
            u if u.starts_with("mi") || u == "m" => 60,
            u if u.starts_with('s') => 1,
            u if u.starts_with('d') => 86_400,
            _ => break,
        };
        total += n * secs;
        found = true;
        k += if w.len() > num.len() { 1 } else { 2 };
    }
    found.then_some(total)
}

/// `at 5pm`, `at 5:30 pm`, `at 17:00` (UTC): the next such time.
fn clock_time(s: &str, now_s: i64) -> Option<i64> {
    let i = s.find(" at ")?;
    let rest = s[i + 4..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == ' '))
        .unwrap_or(rest.len());
    let t = rest[..end].trim();
    let (clock, pm, am) = if let Some(c) = t.strip_suffix("pm") {
        (c.trim(), true, false)
    } else if let Some(c) = t.strip_suffix("am") {
        (c.trim(), false, true)
    } else {
        (t.split_whitespace().next().unwrap_or(""), false, false)
    };
    let (h, m) = match clock.split_once(':') {
        Some((h, m)) => (h.parse::<i64>().ok()?, m.get(..2)?.parse::<i64>().ok()?),
        None => (clock.parse::<i64>().ok()?, 0),
    };
    if !(am || pm || clock.contains(':')) || h > 23 || m > 59 {
        return None;
    }
    let h = match (pm, am) {
        (true, _) if h < 12 => h + 12,
        (_, true) if h == 12 => 0,
        _ => h,
    };
    let day = now_s - now_s.rem_euclid(86_400);
    let at = day + h * 3600 + m * 60;
    Some(if at > now_s { at } else { at + 86_400 })
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-02T15:30:00Z
    const NOW: i64 = 1_796_225_400;

    fn wait(msg: &str) -> Option<u64> {
        reset_wait(msg, NOW).map(|d| d.as_secs())
    }

    #[test]
    fn reset_times_in_the_forms_providers_write_them() {
        assert_eq!(wait("Claude AI usage limit reached|1796230800"), Some(5400));
        assert_eq!(wait("Usage limit reached, resets at 5pm"), Some(5400));
        assert_eq!(
            wait("usage limit reached; resets at 5:15 PM (UTC)"),
            Some(6300)
        );
        assert_eq!(wait("Quota exceeded. Try again at 09:00."), Some(63000));
        assert_eq!(
            wait("You have hit your usage limit. Try again in 3 hours."),
            Some(10800)
        );
        assert_eq!(wait("rate limit exceeded, retry in 2h 30m"), Some(9000));
        assert_eq!(wait("rate limit exceeded, retry in 45 minutes"), Some(2700));
        assert_eq!(
            wait("Monthly quota reached; it resets at 2026-12-03T00:00:00Z."),
            Some(30600)
        );
    }

    #[test]
    fn other_refusals_and_past_times_are_not_waits() {
        assert_eq!(wait("invalid model name, try again at 5pm"), None);
        assert_eq!(wait("usage limit reached"), None);
        assert_eq!(wait("usage limit reached|1700000000"), None);
        assert_eq!(wait("usage limit reached at 25:00"), None);
    }
}
