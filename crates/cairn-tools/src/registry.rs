//! The set of tools an agent may use.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_core::ToolSpec;

use crate::Tool;
use crate::exec::Exec;
use crate::files::{EditFile, ListDir, ReadFile, WriteFile};
use crate::http_fetch::HttpFetch;
use crate::memory::{LoadSkill, MemoryForget, MemorySave, MemorySearch};
use crate::schedule::{ScheduleCancel, ScheduleCreate, ScheduleList};

/// Names of the built-in tools.
pub const BUILTIN_TOOLS: &[&str] = &[
    "exec",
    "read_file",
    "write_file",
    "edit_file",
    "list_dir",
    "http_fetch",
    "memory_save",
    "memory_search",
    "memory_forget",
    "load_skill",
    "schedule_create",
    "schedule_list",
    "schedule_cancel",
];

/// A tool name nobody provides.
#[derive(Debug)]
pub struct UnknownTool(pub String);

impl std::error::Error for UnknownTool {}

impl std::fmt::Display for UnknownTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown tool {:?}; built-in tools are: {}",
            self.0,
            BUILTIN_TOOLS.join(", ")
        )
    }
}

/// Tools by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl ToolRegistry {
    /// The built-in tools named in `allowed` (all of them for `["*"]`).
    pub fn builtin(allowed: &[String]) -> Result<Self, UnknownTool> {
        let all = allowed.iter().any(|a| a == "*");
        let mut reg = ToolRegistry::default();
        for name in allowed.iter().filter(|a| *a != "*") {
            if !BUILTIN_TOOLS.contains(&name.as_str()) {
                return Err(UnknownTool(name.clone()));
            }
        }
        for name in BUILTIN_TOOLS {
            if all || allowed.iter().any(|a| a == name) {
                let tool: Arc<dyn Tool> = match *name {
                    "exec" => Arc::new(Exec),
                    "read_file" => Arc::new(ReadFile),
                    "write_file" => Arc::new(WriteFile),
                    "edit_file" => Arc::new(EditFile),
                    "list_dir" => Arc::new(ListDir),
                    "memory_save" => Arc::new(MemorySave),
                    "memory_search" => Arc::new(MemorySearch),
                    "memory_forget" => Arc::new(MemoryForget),
                    "load_skill" => Arc::new(LoadSkill),
                    "schedule_create" => Arc::new(ScheduleCreate),
                    "schedule_list" => Arc::new(ScheduleList),
                    "schedule_cancel" => Arc::new(ScheduleCancel),
                    _ => Arc::new(HttpFetch::new()),
                };
                reg.tools.insert(name.to_string(), tool);
            }
        }
        Ok(reg)
    }

    /// Adds or replaces a tool.
    pub fn insert(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name, tool);
    }

    /// A tool by name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// Specs of all tools, for the model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec()).collect()
    }

    /// Tool names.
    pub fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }
}
