//! Identifiers: time-ordered (UUIDv7) with a short prefix naming the kind.

use thiserror::Error;

/// A new time-ordered id such as `run_0193c1f2…`; sorts by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Why a user-chosen name (session name, agent name) was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid {what} {value:?}: use 1-128 characters from A-Z a-z 0-9 . _ - (not starting with . or -)"
)]
pub struct InvalidName {
    /// What kind of name it was ("session", "agent").
    pub what: &'static str,
    /// The refused value.
    pub value: String,
}

/// Checks a user-chosen name: it ends up in paths and URLs, so keep it plain.
pub fn validate_name(what: &'static str, value: &str) -> Result<(), InvalidName> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with(['.', '-'])
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            what,
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation() {
        let a = new_id("run");
        let b = new_id("run");
        assert!(a.starts_with("run_"));
        assert!(a < b);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("session", "work-1.a_b").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "-x", "é", &"x".repeat(129)] {
            assert!(validate_name("session", bad).is_err(), "{bad}");
        }
    }
}
