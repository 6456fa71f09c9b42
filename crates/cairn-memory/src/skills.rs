//! Procedural memory: skills are markdown files with a front matter naming
//! them and saying when they help. The model sees the index (name and
//! description) in its system prompt and loads a skill's body on demand
//! (the `load_skill` tool), so a hundred skills cost a few lines of context.
//!
//! Shared skills live in `$CAIRN_HOME/skills/`, an agent's own in
//! `$CAIRN_HOME/agents/<agent>/skills/` (which win on a name clash); each is
//! `<name>.md` or `<name>/SKILL.md`.

use std::path::{Path, PathBuf};

/// One skill file.
#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    /// From the front matter.
    pub name: String,
    /// When it helps, from the front matter.
    pub description: String,
    /// The file.
    pub path: PathBuf,
}

/// A file that looks like a skill but cannot be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadSkill {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// The skill directories of `agent` under `home`, shared first.
pub fn skill_dirs(home: &Path, agent: &str) -> Vec<PathBuf> {
    vec![
        home.join("skills"),
        home.join("agents").join(agent).join("skills"),
    ]
}

/// Reads the skills in `dirs` (later directories override earlier ones by
/// name), sorted by name, and the files that were skipped.
pub fn list_skills(dirs: &[PathBuf]) -> (Vec<Skill>, Vec<BadSkill>) {
    let mut by_name = std::collections::BTreeMap::new();
    let mut bad = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                if p.is_dir() {
                    Some(p.join("SKILL.md")).filter(|f| f.is_file())
                } else {
                    (p.extension().is_some_and(|e| e == "md")).then_some(p)
                }
            })
            .collect();
        files.sort();
        for path in files {
            match read_front_matter(&path) {
                Ok(skill) => {
                    by_name.insert(skill.name.clone(), skill);
                }
                Err(reason) => bad.push(BadSkill { path, reason }),
            }
        }
    }
    (by_name.into_values().collect(), bad)
}

/// A skill's body (the file without its front matter).
pub fn skill_body(skill: &Skill) -> Result<String, String> {
    let text = read_text(&skill.path)?;
    Ok(split_front_matter(&text)
        .map(|(_, body)| body.trim().to_string())
        .unwrap_or_default())
}

/// The index block for the system prompt; `None` when there are no skills.
pub fn skills_prompt(skills: &[Skill]) -> Option<String> {
    if skills.is_empty() {
        return None;
    }
    let mut out = String::from(
        "Skills (instructions you can load with the load_skill tool when a task matches):\n",
    );
    for s in skills {
        out.push_str(&format!("- {}: {}\n", s.name, s.description));
    }
    Some(out)
}

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let end = rest.find("\n---")?;
    let after = &rest[end + 4..];
    let body = after
        .strip_prefix("\r\n")
        .or_else(|| after.strip_prefix('\n'))
        .unwrap_or(after);
    Some((&rest[..end], body))
}

fn read_front_matter(path: &Path) -> Result<Skill, String> {
    let text = read_text(path)?;
    let (front, _) = split_front_matter(&text)
        .ok_or("no front matter: start the file with ---, name: …, description: …, ---")?;
    let field = |key: &str| {
        front.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().trim_matches(['"', '\'']).to_string())
        })
    };
    let name = field("name")
        .filter(|n| !n.is_empty())
        .ok_or("front matter has no name")?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "skill name {name:?} may use only letters, digits, - and _"
        ));
    }
    let description = field("description")
        .filter(|d| !d.is_empty())
        .ok_or("front matter has no description")?;
    Ok(Skill {
        name,
        description,
        path: path.to_path_buf(),
    })
}
