//! Memory as a directory of markdown a person can read, edit, keep in git
//! and import again.
//!
//! ```text
//! identity.md                who the agent is (name, model, system prompt)
//! state.md                   how much it remembers, and its most important facts
//! references.md              the skills it can load
//! users/<id>/profile.md      facts about each person
//! sessions/YYYY-MM-DD.md     conversations, by day (UTC)
//! facts/<id>.md              every fact, one per file, metadata in front matter
//! ```
//!
//! `facts/` is the canonical part: import reads only it (the other files are
//! views for people), checks every file before writing anything, and saves
//! all facts in one transaction, so a bad directory imports nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cairn_core::{AgentSpec, ContentBlock, MemoryRecord, Role};

use crate::skills::Skill;
use crate::{Memory, MemoryError, SaveMemory};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// Facts written.
    pub facts: usize,
    /// Day files of conversation written.
    pub days: usize,
    /// People with a profile.
    pub users: usize,
}

fn io(path: &Path, e: impl std::fmt::Display) -> MemoryError {
    MemoryError::Io(format!("{}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), MemoryError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    std::fs::write(path, text).map_err(|e| io(path, e))
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A user id as a directory name (anything else becomes `_`).
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

fn fact_file(m: &MemoryRecord) -> String {
    let mut out = String::from("---\n");
    let _ = writeln!(out, "id: {}", m.id);
    let _ = writeln!(out, "importance: {}", m.importance);
    if let Some(u) = &m.user_id {
        let _ = writeln!(out, "user: {}", serde_json::Value::String(u.clone()));
    }
    if let Some(s) = &m.source {
        let _ = writeln!(out, "source: {}", serde_json::Value::String(s.clone()));
    }
    let _ = writeln!(out, "created: {}", time(m.created_at));
    let _ = writeln!(out, "updated: {}", time(m.updated_at));
    out.push_str("---\n");
    out.push_str(&m.text);
    out.push('\n');
    out
}

/// Writes `agent`'s memory to `dir`, which must not exist or be empty.
pub async fn export_markdown(
    memory: &Memory,
    agent: &AgentSpec,
    skills: &[Skill],
    dir: &Path,
) -> Result<ExportSummary, MemoryError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
        if entries.next().is_some() {
            return Err(MemoryError::Io(format!(
                "{} is not empty: export into a new or empty directory (nothing was written)",
                dir.display()
            )));
        }
    }
    let facts = memory.list(&agent.name, None, i64::MAX).await?;
    let messages = memory.store().agent_messages(&agent.name).await?;

    write(
        &dir.join("identity.md"),
        &format!(
            "# {}\n\nModel: {}\n\n## System prompt\n\n{}\n",
            agent.name,
            if agent.model.is_empty() {
                "(the provider's default)"
            } else {
                &agent.model
            },
            agent.system_prompt
        ),
    )?;

    let mut state = format!(
        "# State of {}\n\n{} facts remembered, {} messages in history.\n\n## Most important facts\n\n",
        agent.name,
        facts.len(),
        messages.len()
    );
    let mut ranked: Vec<&MemoryRecord> = facts.iter().collect();
    ranked.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    for m in ranked.iter().take(20) {
        let _ = writeln!(
            state,
            "- {} ({:.1})",
            m.text.replace('\n', " "),
            m.importance
        );
    }
    write(&dir.join("state.md"), &state)?;

    let mut refs = String::from("# Skills\n\n");
    for s in skills {
        let _ = writeln!(
            refs,
            "- **{}**: {} ({})",
            s.name,
            s.description,
            s.path.display()
        );
    }
    if skills.is_empty() {
        refs.push_str("(none)\n");
    }
    write(&dir.join("references.md"), &refs)?;

    for m in &facts {
        write(
            &dir.join("facts").join(format!("{}.md", m.id)),
            &fact_file(m),
        )?;
    }

    let mut users: std::collections::BTreeMap<&str, Vec<&MemoryRecord>> = Default::default();
    for m in &facts {
        if let Some(u) = &m.user_id {
            users.entry(u).or_default().push(m);
        }
    }
    for (user, theirs) in &users {
        let mut text = format!("# {user}\n\n");
        for m in theirs {
            let _ = writeln!(text, "- {}", m.text.replace('\n', " "));
        }
        write(
            &dir.join("users").join(safe_name(user)).join("profile.md"),
            &text,
        )?;
    }

    let mut days: std::collections::BTreeMap<String, String> = Default::default();
    for (session, seq, at, message) in &messages {
        let who = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let page = days.entry(day(*at)).or_default();
        for b in &message.content {
            let line = match b {
                ContentBlock::Text { text } => format!("**{who}**: {text}"),
                ContentBlock::ToolUse { name, input, .. } => {
                    format!("**{who}** → `{name}` {input}")
                }
                ContentBlock::ToolResult { content, .. } => {
                    let short: String = content.chars().take(500).collect();
                    format!("**tool**: {short}")
                }
            };
            let _ = writeln!(page, "{} · {session}#{seq} · {line}\n", time(*at));
        }
    }
    for (d, text) in &days {
        write(
            &dir.join("sessions").join(format!("{d}.md")),
            &format!("# {d}\n\n{text}"),
        )?;
    }
    Ok(ExportSummary {
        facts: facts.len(),
        days: days.len(),
        users: users.len(),
    })
}

/// One fact file parsed.
fn parse_fact(path: &Path, agent: &str) -> Result<SaveMemory, MemoryError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let text =
        String::from_utf8(bytes).map_err(|_| io(path, "not UTF-8 text; save the file as UTF-8"))?;
    let bad = |why: &str| {
        io(
            path,
            format!(
                "{why} (expected ---, id/importance/user/source/created/updated lines, ---, then the fact)"
            ),
        )
    };
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or_else(|| bad("no front matter"))?;
    let end = rest
        .find("\n---")
        .ok_or_else(|| bad("front matter is not closed"))?;
    let (front, body) = (&rest[..end], &rest[end + 4..]);
    let body = body.trim();
    let mut fact = SaveMemory {
        agent: agent.to_string(),
        user_id: None,
        text: body.to_string(),
        importance: None,
        source: None,
        times: None,
        shared: false,
    };
    let (mut created, mut updated) = (None, None);
    for line in front.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| bad(&format!("line {line:?} is not `key: value`")))?;
        let value = value.trim();
        let string = || -> Result<String, MemoryError> {
            if value.starts_with('"') {
                serde_json::from_str(value).map_err(|_| bad(&format!("bad quoted value {value:?}")))
            } else {
                Ok(value.to_string())
            }
        };
        match key.trim() {
            "id" => {}
            "importance" => {
                fact.importance = Some(
                    value
                        .parse()
                        .map_err(|_| bad(&format!("importance {value:?} is not a number")))?,
                )
            }
            "user" => fact.user_id = Some(string()?),
            "source" => fact.source = Some(string()?),
            "created" => {
                created =
                    Some(parse_time(value).ok_or_else(|| bad("created is not an RFC 3339 time"))?)
            }
            "updated" => {
                updated =
                    Some(parse_time(value).ok_or_else(|| bad("updated is not an RFC 3339 time"))?)
            }
            other => return Err(bad(&format!("unknown key {other:?}"))),
        }
    }
    if let (Some(c), Some(u)) = (created, updated) {
        fact.times = Some((c, u));
    }
    Memory::prepare(&fact.text).map_err(|e| io(path, e))?;
    Ok(fact)
}

/// Imports the facts of an export into `agent`'s memory: every file is
/// checked first, then all are saved in one transaction (facts already
/// kept are refreshed, not duplicated). Returns (new, already known).
pub async fn import_markdown(
    memory: &Memory,
    agent: &str,
    dir: &Path,
) -> Result<(usize, usize), MemoryError> {
    let facts_dir = dir.join("facts");
    if !facts_dir.is_dir() {
        return Err(MemoryError::Io(format!(
            "{} has no facts/ directory: is it a `cairn memory export`? (nothing was imported)",
            dir.display()
        )));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&facts_dir)
        .map_err(|e| io(&facts_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    let facts = files
        .iter()
        .map(|p| parse_fact(p, agent))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MemoryError::Io(format!("{e} (nothing was imported)")))?;
    let saved = memory.save_many(facts).await?;
    let new = saved
        .iter()
        .filter(|s| matches!(s, cairn_store::SavedMemory::New(_)))
        .count();
    Ok((new, saved.len() - new))
}
