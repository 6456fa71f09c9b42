//! The environment a command sees: an allowlist, not the server's
//! environment minus a denylist (a key under an unusual name would leak).

use std::collections::BTreeMap;
use std::path::Path;

/// Variables passed through from the server's environment when set.
const PASSED: &[&str] = &["LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ"];

const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The allowlisted environment plus the agent's own variables.
pub fn allowed(workspace: &Path, extra: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let path = std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    out.push(("PATH".into(), path));
    for name in PASSED {
        if let Ok(v) = std::env::var(name) {
            out.push(((*name).into(), v));
        }
    }
    out.push(("HOME".into(), workspace.display().to_string()));
    out.push(("TMPDIR".into(), "/tmp".into()));
    for (k, v) in extra {
        out.retain(|(name, _)| name != k);
        out.push((k.clone(), v.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_names_pass() {
        let mut extra = BTreeMap::new();
        extra.insert("PROJECT".to_string(), "x".to_string());
        let env = allowed(Path::new("/ws"), &extra);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"PATH") && names.contains(&"PROJECT"));
        assert!(env.contains(&("HOME".to_string(), "/ws".to_string())));
        for (k, _) in &env {
            assert!(
                ["PATH", "HOME", "TMPDIR", "PROJECT"].contains(&k.as_str())
                    || PASSED.contains(&k.as_str()),
                "{k}"
            );
        }
    }
}
