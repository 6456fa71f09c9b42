//! What a model request carries: the classes of its content (from the
//! agent and tools declared sensitive, and from the detectors) and, for a
//! provider allowed less, a copy with the rest redacted or withheld.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_core::{ContentBlock, DataClass, ModelRequest};

use super::detect::Detectors;
use super::redact::Redactions;

/// Where sensitive content comes from, as declared in `[router]`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Results of these tools carry this class.
    pub tools: BTreeMap<String, DataClass>,
    /// Everything these agents handle carries this class.
    pub agents: BTreeMap<String, DataClass>,
}

impl Sources {
    /// The class of `tool`'s results: its own entry, else the longest
    /// `prefix*` entry it starts with (`crm__*` covers an MCP server's
    /// tools).
    pub fn tool_class(&self, tool: &str) -> Option<DataClass> {
        if let Some(&c) = self.tools.get(tool) {
            return Some(c);
        }
        self.tools
            .iter()
            .filter_map(|(k, c)| Some((k.strip_suffix('*')?, c)))
            .filter(|(prefix, _)| tool.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, &c)| c)
    }
}

/// The classes in a request and what raised them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Every class present (public always is).
    pub classes: BTreeSet<DataClass>,
    /// Detector and source names, each once, in order found.
    pub labels: Vec<String>,
}

impl Analysis {
    /// The most sensitive class present.
    pub fn class(&self) -> DataClass {
        self.classes.last().copied().unwrap_or_default()
    }

    fn add(&mut self, class: DataClass, label: &str) {
        self.classes.insert(class);
        if !self.labels.iter().any(|l| l == label) {
            self.labels.push(label.to_string());
        }
    }
}

/// Tool call id → tool name, to know whose result a block is.
fn tool_names(req: &ModelRequest) -> HashMap<&str, &str> {
    req.messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|b| match b {
            ContentBlock::ToolUse { id, name, .. } => Some((id.as_str(), name.as_str())),
            _ => None,
        })
        .collect()
}

/// Every string inside a JSON value.
fn json_strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k);
            json_strings(x, out)
        }),
        _ => {}
    }
}

/// The class of everything the calling agent handles: as `[router]
/// agents` declares it, or as the run says, whichever is higher.
fn agent_class(req: &ModelRequest, sources: &Sources) -> DataClass {
    sources
        .agents
        .get(&req.hints.agent)
        .copied()
        .unwrap_or_default()
        .max(req.hints.class)
}

/// Classifies `req`.
pub fn analyse(req: &ModelRequest, detectors: &Detectors, sources: &Sources) -> Analysis {
    let mut a = Analysis::default();
    a.classes.insert(DataClass::Public);
    let agent_class = agent_class(req, sources);
    if agent_class > DataClass::Public {
        a.add(agent_class, &format!("agent:{}", req.hints.agent));
    }
    let mut scan = |text: &str| {
        for f in detectors.scan(text) {
            a.add(DataClass::Restricted, &f.kind);
        }
    };
    scan(&req.system);
    let tools = tool_names(req);
    let mut sourced = Vec::new();
    for block in req.messages.iter().flat_map(|m| &m.content) {
        match block {
            ContentBlock::Text { text } => scan(text),
            ContentBlock::ToolUse { input, .. } => {
                let mut strings = Vec::new();
                json_strings(input, &mut strings);
                strings.into_iter().for_each(&mut scan);
            }
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                ..
            } => {
                scan(content);
                let tool = tools.get(tool_use_id.as_str()).copied().unwrap_or_default();
                if let Some(class) = sources.tool_class(tool) {
                    sourced.push((class, format!("tool:{tool}")));
                }
            }
        }
    }
    for (class, label) in sourced {
        a.add(class, &label);
    }
    a
}

/// Whether anything of `req` may go to a provider allowed `allowed`: not
/// when its agent is declared above that.
pub fn agent_allowed(req: &ModelRequest, allowed: &BTreeSet<DataClass>, sources: &Sources) -> bool {
    allowed.contains(&agent_class(req, sources))
}

/// A copy of a request fit for a provider allowed `allowed`.
pub struct Redacted {
    /// The request to send.
    pub request: ModelRequest,
    /// Placeholders to put back in the answer.
    pub redactions: Redactions,
    /// Blocks withheld whole.
    pub withheld: usize,
    /// Blocks sent as a summary in their place.
    pub summarised: usize,
}

/// A tool result from a source declared above what a provider may get.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced {
    /// The call it answers.
    pub tool_use_id: String,
    /// The tool that produced it.
    pub tool: String,
    /// Its class.
    pub class: DataClass,
    /// What it says.
    pub content: String,
}

/// The results in `req` of sources declared above `allowed`.
pub fn sourced_above(
    req: &ModelRequest,
    allowed: &BTreeSet<DataClass>,
    sources: &Sources,
) -> Vec<Sourced> {
    let tools = tool_names(req);
    req.messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|b| match b {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                ..
            } => {
                let tool = tools.get(tool_use_id.as_str()).copied().unwrap_or_default();
                let class = sources.tool_class(tool).filter(|c| !allowed.contains(c))?;
                Some(Sourced {
                    tool_use_id: tool_use_id.clone(),
                    tool: tool.to_string(),
                    class,
                    content: content.clone(),
                })
            }
            _ => None,
        })
        .collect()
}

/// `req` with detector findings above `allowed` replaced by placeholders
/// and results of sources above it replaced by their entry in `summaries`
/// (tool call id → summary), else withheld. `None` if the agent itself is
/// declared above `allowed` (nothing of it may go).
pub fn redact_for(
    req: &ModelRequest,
    allowed: &BTreeSet<DataClass>,
    detectors: &Detectors,
    sources: &Sources,
    summaries: &HashMap<String, String>,
) -> Option<Redacted> {
    if !agent_allowed(req, allowed, sources) {
        return None;
    }
    let mut redactions = Redactions::default();
    let redact_pii = !allowed.contains(&DataClass::Restricted);
    let mut fix = |text: &str| -> String {
        if !redact_pii {
            return text.to_string();
        }
        let found = detectors.scan(text);
        let spans: Vec<(usize, usize, &str)> = found
            .iter()
            .map(|f| (f.start, f.end, f.kind.as_str()))
            .collect();
        redactions.apply(text, &spans)
    };
    let tools: HashMap<String, String> = tool_names(req)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut out = req.clone();
    out.system = fix(&req.system);
    let mut withheld = 0;
    let mut summarised = 0;
    for block in out.messages.iter_mut().flat_map(|m| &mut m.content) {
        match block {
            ContentBlock::Text { text } => *text = fix(text),
            ContentBlock::ToolUse { input, .. } => *input = map_strings(input, &mut fix),
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                ..
            } => {
                let tool = tools
                    .get(tool_use_id.as_str())
                    .map(String::as_str)
                    .unwrap_or_default();
                match sources.tool_class(tool) {
                    Some(class) if !allowed.contains(&class) => {
                        if let Some(summary) = summaries.get(tool_use_id.as_str()) {
                            summarised += 1;
                            *content = fix(&format!(
                                "[summarised by cairn: the result of {tool} is {} data, which may not be sent to this model; a model allowed to read it wrote this in its place]\n{summary}",
                                class.as_str()
                            ));
                            continue;
                        }
                        withheld += 1;
                        *content = format!(
                            "[withheld by cairn: the result of {tool} is {} data, which may not be sent to this model]",
                            class.as_str()
                        );
                    }
                    _ => *content = fix(content),
                }
            }
        }
    }
    Some(Redacted {
        request: out,
        redactions,
        withheld,
        summarised,
    })
}

fn map_strings(v: &serde_json::Value, f: &mut impl FnMut(&str) -> String) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| map_strings(x, f)).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, x)| (f(k), map_strings(x, f))).collect())
        }
        other => other.clone(),
    }
}
