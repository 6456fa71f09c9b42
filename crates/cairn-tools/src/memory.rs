//! `memory_save`, `memory_search`, `memory_forget`: the agent's own access to
//! its semantic memory (facts kept across sessions and restarts).

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use cairn_memory::{SaveMemory, Scope, SearchOptions};
use cairn_store::SavedMemory;
use serde_json::json;

use crate::{Tool, ToolContext, str_arg};

/// The `memory_save` tool.
pub struct MemorySave;
/// The `memory_search` tool.
pub struct MemorySearch;
/// The `memory_forget` tool.
pub struct MemoryForget;

fn memory(ctx: &ToolContext) -> Result<&cairn_memory::Memory, ToolOutput> {
    ctx.memory
        .as_deref()
        .ok_or_else(|| ToolOutput::error("memory is not available in this run"))
}

#[async_trait]
impl Tool for MemorySave {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "memory_save".into(),
            description: "Remember a fact for later conversations (a preference, a name, a decision, where something is). \
                One short self-contained statement per call; saving the same fact again only refreshes it.".into(),
            input_schema: json!({"type": "object", "properties": {
                "text": {"type": "string", "description": "the fact, e.g. \"The user's dog is named Biscuit.\""},
                "importance": {"type": "number", "minimum": 0, "maximum": 1, "description": "0 trivia … 1 essential (default 0.5)"}
            }, "required": ["text"]}),
        }
    }

    fn idempotent(&self) -> bool {
        // Saving twice keeps one fact.
        true
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let memory = tool_try!(memory(ctx));
        let text = tool_try!(str_arg(&input, "text"));
        let importance = input.get("importance").and_then(serde_json::Value::as_f64);
        let req = SaveMemory {
            agent: ctx.agent.clone(),
            user_id: ctx.user_id.clone(),
            text: text.to_string(),
            importance,
            source: ctx.run_id.clone(),
            times: None,
            shared: false,
        };
        match memory.save(req).await {
            Ok(SavedMemory::New(m)) => ToolOutput::ok(format!("saved as {}", m.id)),
            Ok(SavedMemory::Duplicate(m)) => {
                ToolOutput::ok(format!("already known as {}: {:?}", m.id, m.text))
            }
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }
}

#[async_trait]
impl Tool for MemorySearch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "memory_search".into(),
            description: "Search the facts you saved earlier, by meaning and by words. Returns the best matches with their ids and relevance (0..1; below about 0.5 a fact is probably not what was asked).".into(),
            input_schema: json!({"type": "object", "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "description": "default 8"}
            }, "required": ["query"]}),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let memory = tool_try!(memory(ctx));
        let query = tool_try!(str_arg(&input, "query"));
        let limit = input
            .get("limit")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(8)
            .clamp(1, 50) as usize;
        let opts = SearchOptions {
            scope: Scope::Person(ctx.user_id.clone()),
            limit,
            ..Default::default()
        };
        match memory.search(&ctx.agent, query, &opts).await {
            Ok(hits) if hits.is_empty() => ToolOutput::ok("no saved facts match"),
            Ok(hits) => ToolOutput::ok(
                hits.iter()
                    // The relevance (0..1) lets the model tell an answer
                    // from the nearest of unrelated facts.
                    .map(|h| {
                        format!(
                            "{} (relevance {:.2}) {}",
                            h.memory.id, h.relevance, h.memory.text
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }
}

#[async_trait]
impl Tool for MemoryForget {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "memory_forget".into(),
            description: "Forget a saved fact by its id (from memory_search), e.g. when it is wrong or the user asks.".into(),
            input_schema: json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}),
        }
    }

    fn idempotent(&self) -> bool {
        // Forgetting again changes nothing (it reports the fact is gone).
        true
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let memory = tool_try!(memory(ctx));
        let id = tool_try!(str_arg(&input, "id"));
        match memory
            .forget(&ctx.agent, &Scope::Person(ctx.user_id.clone()), id)
            .await
        {
            Ok(m) => ToolOutput::ok(format!("forgot {}: {:?}", m.id, m.text)),
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }
}

/// The `load_skill` tool.
pub struct LoadSkill;

#[async_trait]
impl Tool for LoadSkill {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "load_skill".into(),
            description:
                "Load the full instructions of a skill listed in your system prompt, by name."
                    .into(),
            input_schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let name = tool_try!(str_arg(&input, "name"));
        let (skills, _) = cairn_memory::skills::list_skills(&ctx.skill_dirs);
        let Some(skill) = skills.iter().find(|s| s.name == name) else {
            let known: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
            return ToolOutput::error(format!(
                "no skill named {name:?}; available: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        match cairn_memory::skills::skill_body(skill) {
            Ok(body) => ToolOutput::ok(body),
            Err(e) => ToolOutput::error(format!("cannot load skill {name:?}: {e}")),
        }
    }
}
