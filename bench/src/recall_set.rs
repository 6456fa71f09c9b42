//! The labelled recall set in `bench/data/recall/`: facts, and questions
//! that each name the facts answering them (or none).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use cairn_memory::{Memory, SaveMemory};
use cairn_store::SavedMemory;

/// A fact of the set.
#[derive(Debug, Clone)]
pub struct Fact {
    /// `f001`…
    pub id: String,
    /// people, preferences, places, …
    pub category: String,
    /// The text saved.
    pub text: String,
}

/// A question of the set.
#[derive(Debug, Clone)]
pub struct Question {
    /// The text asked.
    pub text: String,
    /// Ids of the facts that answer it; empty: nothing in the set does.
    pub answers: Vec<String>,
    /// In the held part (reported), not the tuning part.
    pub held: bool,
}

/// When every fact of the set is saved (2026-01-01, ms since the epoch);
/// searches rank as of a day later.
pub const SAVED_AT: i64 = 1_767_225_600_000;

/// The whole set.
pub struct RecallSet {
    /// Every fact.
    pub facts: Vec<Fact>,
    /// Every question, in file order.
    pub questions: Vec<Question>,
}

/// The set's directory in the source tree.
pub fn default_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/recall")
}

/// Lines that are not blank and not comments, with their line numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// Reads and checks the set: ids unique, every answer a known fact, no
/// fact twice.
pub fn load(dir: &Path) -> Result<RecallSet> {
    let facts_path = dir.join("facts.txt");
    let text = std::fs::read_to_string(&facts_path)
        .with_context(|| format!("reading {}", facts_path.display()))?;
    let mut facts = Vec::new();
    let mut category = String::from("none");
    let mut seen_text = HashSet::new();
    for (n, line) in lines(&text) {
        if let Some(c) = line.strip_prefix("# category:") {
            category = c.trim().to_string();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((id, fact)) = line.split_once(' ') else {
            bail!("{}:{n}: expected `<id> <fact>`", facts_path.display());
        };
        if !seen_text.insert(fact.to_lowercase()) {
            bail!("{}:{n}: the same fact twice", facts_path.display());
        }
        facts.push(Fact {
            id: id.to_string(),
            category: category.clone(),
            text: fact.to_string(),
        });
    }
    let ids: HashMap<&str, usize> = facts
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.as_str(), i))
        .collect();
    if ids.len() != facts.len() {
        bail!("{}: an id is used twice", facts_path.display());
    }
    let q_path = dir.join("questions.txt");
    let text = std::fs::read_to_string(&q_path)
        .with_context(|| format!("reading {}", q_path.display()))?;
    let mut questions = Vec::new();
    for (n, line) in lines(&text) {
        if line.starts_with('#') {
            continue;
        }
        let Some((answers, question)) = line.split_once(' ') else {
            bail!("{}:{n}: expected `<ids or -> <question>`", q_path.display());
        };
        let answers: Vec<String> = match answers {
            "-" => vec![],
            list => list.split(',').map(str::to_string).collect(),
        };
        if let Some(bad) = answers.iter().find(|a| !ids.contains_key(a.as_str())) {
            bail!("{}:{n}: no fact {bad}", q_path.display());
        }
        // Odd-numbered questions (1st, 3rd, …) tune, even ones are held.
        let held = questions.len() % 2 == 1;
        questions.push(Question {
            text: question.to_string(),
            answers,
            held,
        });
    }
    Ok(RecallSet { facts, questions })
}

impl RecallSet {
    /// Every fact by its id.
    pub fn by_id(&self) -> HashMap<&str, &Fact> {
        self.facts.iter().map(|f| (f.id.as_str(), f)).collect()
    }

    /// Saves every fact as `agent`'s; gives the fact id of each memory id.
    /// A fact taken for a near-duplicate of another is an error: the set
    /// would no longer be what it says.
    pub async fn save(&self, memory: &Memory, agent: &str) -> Result<HashMap<String, String>> {
        let reqs = self
            .facts
            .iter()
            .map(|f| SaveMemory {
                agent: agent.into(),
                user_id: None,
                text: f.text.clone(),
                importance: None,
                source: Some("recall-set".into()),
                // One fixed time for every fact: recency breaks no tie
                // differently from one run to the next.
                times: Some((SAVED_AT, SAVED_AT)),
                shared: false,
            })
            .collect();
        let saved = memory.save_many(reqs).await?;
        let mut ids = HashMap::new();
        for (fact, s) in self.facts.iter().zip(saved) {
            match s {
                SavedMemory::New(m) => ids.insert(m.id, fact.id.clone()),
                SavedMemory::Duplicate(m) => {
                    bail!("{} was taken for a near-duplicate of {:?}", fact.id, m.text)
                }
            };
        }
        Ok(ids)
    }

    /// A slice of about `n` questions spread over the whole set (every
    /// k-th), for a quick run.
    pub fn slice(&self, n: usize) -> Vec<Question> {
        let step = (self.questions.len() / n.max(1)).max(1);
        self.questions
            .iter()
            .step_by(step)
            .take(n)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use cairn_memory::Scope;
    use cairn_store::Store;

    /// What the issue asks of the set, checked on the files themselves
    /// (no model needed): sizes, and how many questions share no content
    /// word with their fact, by the full-text index's own stemming.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_set_is_as_large_and_as_hard_as_asked() {
        let set = load(&default_dir()).unwrap();
        assert!(set.facts.len() >= 300, "{} facts", set.facts.len());
        let answerable: Vec<&Question> = set
            .questions
            .iter()
            .filter(|q| !q.answers.is_empty())
            .collect();
        let unanswerable = set.questions.len() - answerable.len();
        assert!(answerable.len() >= 200, "{} questions", answerable.len());
        assert!(
            unanswerable >= 20,
            "{unanswerable} questions without answer"
        );
        for kind in [
            "people",
            "preferences",
            "places",
            "dates",
            "infrastructure",
            "projects",
            "health",
            "money",
        ] {
            assert!(
                set.facts.iter().filter(|f| f.category == kind).count() >= 20,
                "{kind}"
            );
        }
        let held = set.questions.iter().filter(|q| q.held).count();
        assert!(held.abs_diff(set.questions.len() - held) <= 1);

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("set.db"))
            .await
            .unwrap();
        let memory = Memory::new(store, None);
        let id_of = set.save(&memory, "set").await.unwrap();
        let mut apart = 0;
        for q in &answerable {
            let found = memory
                .candidates("set", &q.text, &Scope::Everyone)
                .await
                .unwrap();
            let shares = found
                .facts
                .iter()
                .any(|c| c.lexical.is_some() && q.answers.contains(&id_of[&c.memory.id]));
            apart += usize::from(!shares);
        }
        assert!(
            apart * 2 >= answerable.len(),
            "only {apart} of {} questions share no content word with their fact",
            answerable.len()
        );
    }
}
