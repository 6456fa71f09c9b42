//! Memory in the loop: facts relevant to the user's message and the index
//! of skills go into the system prompt (facts within a byte budget).

use cairn_memory::skills::{list_skills, skill_dirs, skills_prompt};
use cairn_memory::{Scope, SearchOptions, format_for_prompt};
use cairn_tools::ToolRegistry;
use std::path::PathBuf;

use crate::{AgentSpec, Runtime};

/// Facts considered for the prompt.
const RECALLED: usize = 6;

impl Runtime {
    /// The agent's system prompt plus what it remembers about `input` and,
    /// when the run may load skills, the index of those in `skill_dirs`. A
    /// memory failure is logged and the run goes on without it.
    pub(crate) async fn system_prompt(
        &self,
        agent: &AgentSpec,
        input: &str,
        tools: &ToolRegistry,
        skill_dirs: &[PathBuf],
        user: Option<&str>,
    ) -> String {
        let base = self.with_memories(agent, input, user).await;
        if tools.get("load_skill").is_none() {
            return base;
        }
        let (skills, bad) = list_skills(skill_dirs);
        for b in bad {
            tracing::warn!(path = %b.path.display(), reason = %b.reason, "skill skipped");
        }
        match skills_prompt(&skills) {
            Some(index) => format!("{base}\n\n{index}"),
            None => base,
        }
    }

    /// Where `agent`'s skills live.
    pub(crate) fn skill_dirs(&self, agent: &str) -> Vec<PathBuf> {
        self.settings
            .home
            .as_deref()
            .map(|h| skill_dirs(h, agent))
            .unwrap_or_default()
    }

    async fn with_memories(&self, agent: &AgentSpec, input: &str, user: Option<&str>) -> String {
        if self.settings.memory_prompt_budget == 0 {
            return agent.system_prompt.clone();
        }
        match self.store.has_memories(&agent.name).await {
            Ok(true) => {}
            Ok(false) => return agent.system_prompt.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read memories; continuing without them");
                return agent.system_prompt.clone();
            }
        }
        // Only what this person told the agent (and shared facts) reaches
        // the prompt of a run working for them.
        // Only facts above the relevance floor: a question the memory
        // cannot answer adds nothing rather than noise.
        let opts = SearchOptions {
            scope: Scope::Person(user.map(str::to_string)),
            limit: RECALLED,
            relevant_only: true,
            ..Default::default()
        };
        match self.memory.search(&agent.name, input, &opts).await {
            Ok(hits) => match format_for_prompt(&hits, self.settings.memory_prompt_budget) {
                Some(block) => format!("{}\n\n{block}", agent.system_prompt),
                None => agent.system_prompt.clone(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "memory search failed; continuing without memories");
                agent.system_prompt.clone()
            }
        }
    }
}
