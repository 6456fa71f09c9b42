//! Detectors for content that may not leave: personal data (emails, phone
//! numbers, IBANs, card numbers) and secrets (API keys, private keys), plus
//! the user's own patterns. Every match is `restricted`. Checksums (IBAN
//! mod 97, card Luhn) keep numbers that merely look alike out.

use regex::Regex;

/// A detector's findings in one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Detector name (`email`, `card`, or a user pattern's name).
    pub kind: String,
    /// Byte range in the text.
    pub start: usize,
    /// End of the range.
    pub end: usize,
}

/// The built-in detectors, by the names config uses.
pub const BUILTIN: &[&str] = &["email", "phone", "iban", "card", "api_key", "private_key"];

struct Detector {
    kind: String,
    re: Regex,
    check: Check,
}

/// A set of detectors, compiled once.
pub struct Detectors {
    list: Vec<Detector>,
}

/// Why a detector set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// A name that is no built-in detector.
    #[error("unknown detector {0:?} (built in: {list})", list = BUILTIN.join(", "))]
    Unknown(String),
    /// A user pattern that does not compile.
    #[error("pattern {name:?} is not a valid regular expression: {error}")]
    BadPattern {
        /// Its name.
        name: String,
        /// What the regex engine said.
        error: String,
    },
}

/// A check on a match beyond its shape (a checksum).
type Check = fn(&str) -> bool;

fn always(_: &str) -> bool {
    true
}

fn builtin(kind: &str) -> Option<(&'static str, Check)> {
    Some(match kind {
        "email" => (
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            always,
        ),
        "phone" => (r"\+?\(?\d[\d ().-]{6,18}\d", phone_like),
        "iban" => (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", iban_valid),
        "card" => (r"\b\d(?:[ -]?\d){12,18}\b", luhn_valid),
        "api_key" => (
            r"\b(?:sk-ant-[A-Za-z0-9_-]{20,}|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})",
            always,
        ),
        "private_key" => (
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            always,
        ),
        _ => return None,
    })
}

impl Detectors {
    /// The named built-ins (all when `names` is empty) and the user's
    /// patterns (name, regex).
    pub fn new(
        names: &[String],
        patterns: &[(String, String)],
    ) -> Result<Detectors, DetectorError> {
        let names: Vec<&str> = if names.is_empty() {
            BUILTIN.to_vec()
        } else {
            names.iter().map(String::as_str).collect()
        };
        let mut list = Vec::new();
        for n in names {
            let (re, check) = builtin(n).ok_or_else(|| DetectorError::Unknown(n.to_string()))?;
            list.push(Detector {
                kind: n.to_string(),
                // The built-in expressions are fixed and tested.
                re: Regex::new(re).map_err(|e| DetectorError::BadPattern {
                    name: n.to_string(),
                    error: e.to_string(),
                })?,
                check,
            });
        }
        for (name, re) in patterns {
            list.push(Detector {
                kind: name.clone(),
                re: Regex::new(re).map_err(|e| DetectorError::BadPattern {
                    name: name.clone(),
                    error: e.to_string(),
                })?,
                check: always,
            });
        }
        Ok(Detectors { list })
    }

    /// Every finding in `text`, in order, overlaps merged into the first.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut found: Vec<Finding> = Vec::new();
        for d in &self.list {
            for m in d.re.find_iter(text) {
                if (d.check)(m.as_str()) {
                    found.push(Finding {
                        kind: d.kind.clone(),
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        found.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
        let mut merged: Vec<Finding> = Vec::with_capacity(found.len());
        for f in found {
            match merged.last_mut() {
                Some(last) if f.start < last.end => last.end = last.end.max(f.end),
                _ => merged.push(f),
            }
        }
        merged
    }
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// A phone number: 8 to 15 digits after a `+`, or 10 to 15 written in
/// groups. An ISO date, a decimal or a bare run of digits (a timestamp, an
/// order number) is not one.
fn phone_like(s: &str) -> bool {
    let n = digits(s).len();
    let plus = s.starts_with('+');
    let separators = s
        .chars()
        .filter(|c| !c.is_ascii_digit() && *c != '+')
        .count();
    (plus && (8..=15).contains(&n)) || ((10..=15).contains(&n) && (1..=4).contains(&separators))
}

/// The Luhn checksum of a 13 to 19 digit card number.
pub fn luhn_valid(s: &str) -> bool {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) || d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The ISO 13616 check: the rearranged number mod 97 is 1.
pub fn iban_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        let d = Detectors::new(&[], &[("employee".into(), r"EMP-\d{6}".into())]).unwrap();
        d.scan(text).into_iter().map(|f| f.kind).collect()
    }

    #[test]
    fn personal_data_and_secrets_are_found_and_look_alikes_are_not() {
        assert_eq!(
            kinds("write to ada.lovelace@example.co.uk today"),
            ["email"]
        );
        assert_eq!(
            kinds("call +44 20 7946 0958 or (555) 123-4567"),
            ["phone", "phone"]
        );
        assert_eq!(kinds("IBAN GB82 WEST 1234 5698 7654 32 please"), ["iban"]);
        assert_eq!(kinds("card 4111 1111 1111 1111 exp 12/29"), ["card"]);
        assert_eq!(
            kinds("key sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345"),
            ["api_key"]
        );
        assert_eq!(kinds("AKIAIOSFODNN7EXAMPLE"), ["api_key"]);
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
        assert_eq!(kinds(pem), ["private_key"]);
        assert_eq!(kinds("badge EMP-123456"), ["employee"]);
        // Look-alikes: a failing checksum, a date, a version, a plain number.
        assert!(kinds("card 4111 1111 1111 1112").is_empty());
        assert!(kinds("IBAN GB82WEST12345698765433").is_empty());
        assert_eq!(kinds("IBAN GB82WEST12345698765432"), ["iban"]);
        assert!(kinds("on 2026-12-02 at 10:30, v1.2.3, 42 items, 3.14159").is_empty());
        assert!(kinds("order 12345678 shipped at 1733140000000").is_empty());
    }

    #[test]
    fn an_invalid_user_pattern_is_refused_with_its_name() {
        let err = Detectors::new(&[], &[("broken".into(), "([a-z".into())])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("\"broken\"") && err.contains("regular expression"),
            "{err}"
        );
        let err = Detectors::new(&["ssn".into()], &[])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown detector \"ssn\""), "{err}");
    }
}
