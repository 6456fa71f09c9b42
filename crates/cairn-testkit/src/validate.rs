//! The checks the real APIs make on a conversation's tool calls, with the
//! errors they answer: a tool result must answer a call of the message just
//! before it, and every call must be answered right after. The fake refuses
//! what the providers refuse, so a history cairn breaks fails a test here
//! rather than in production.

use serde_json::Value;

use crate::wire::Dialect;

/// `Err(message)` when the providers would refuse `body`'s messages.
pub(crate) fn check(dialect: Dialect, body: &Value) -> Result<(), String> {
    let empty = vec![];
    let messages = body["messages"].as_array().unwrap_or(&empty);
    match dialect {
        Dialect::Anthropic => anthropic(messages),
        Dialect::OpenAi => openai(messages),
    }
}

fn blocks<'a>(m: &'a Value, kind: &str, field: &str) -> Vec<&'a str> {
    m["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == kind)
        .filter_map(|b| b[field].as_str())
        .collect()
}

fn anthropic(messages: &[Value]) -> Result<(), String> {
    if messages.first().is_some_and(|m| m["role"] != "user") {
        return Err("messages: first message must use the \"user\" role".into());
    }
    for (i, m) in messages.iter().enumerate() {
        let results = blocks(m, "tool_result", "tool_use_id");
        let asked = if i > 0 {
            blocks(&messages[i - 1], "tool_use", "id")
        } else {
            vec![]
        };
        if let Some(orphan) = results.iter().find(|id| !asked.contains(id)) {
            return Err(format!(
                "messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {orphan}. \
                 Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            ));
        }
        let calls = blocks(m, "tool_use", "id");
        let answered = messages
            .get(i + 1)
            .map(|n| blocks(n, "tool_result", "tool_use_id"))
            .unwrap_or_default();
        let open: Vec<&str> = calls
            .into_iter()
            .filter(|c| !answered.contains(c))
            .collect();
        if !open.is_empty() && i + 1 < messages.len() {
            return Err(format!(
                "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. \
                 Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                open.join(", ")
            ));
        }
    }
    Ok(())
}

fn openai(messages: &[Value]) -> Result<(), String> {
    let mut pending: Vec<String> = Vec::new();
    for m in messages {
        if m["role"] == "tool" {
            let id = m["tool_call_id"].as_str().unwrap_or("");
            match pending.iter().position(|p| p == id) {
                Some(at) => {
                    pending.remove(at);
                }
                None => {
                    return Err("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.".into());
                }
            }
            continue;
        }
        if !pending.is_empty() {
            return Err(format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. \
                 The following tool_call_ids did not have response messages: {}",
                pending.join(", ")
            ));
        }
        pending = m["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str().map(str::to_string))
            .collect();
    }
    Ok(())
}
