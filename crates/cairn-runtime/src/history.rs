//! Keeping a session's history valid for the providers.

use cairn_core::{ContentBlock, Message, Role};

/// What the model is told about a tool call whose result was never recorded.
pub const OUTCOME_UNKNOWN: &str = "outcome unknown: the process stopped while this tool call was running; it was not re-run. Check its effects before repeating it.";

/// Every tool call in an assistant message must be answered by a result in
/// the next message. A run that stopped mid-call (crash, cancel) can leave
/// calls unanswered; this adds an "outcome unknown" result for each, so the
/// history stays valid and the model knows what happened.
pub fn close_open_tool_calls(messages: &mut Vec<Message>) {
    let mut i = 0;
    while i < messages.len() {
        if messages[i].role == Role::Assistant {
            let open: Vec<String> = messages[i]
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolUse { id, .. } => Some(id.clone()),
                    _ => None,
                })
                .filter(|id| !answered(messages.get(i + 1), id))
                .collect();
            if !open.is_empty() {
                let results = open.into_iter().map(|id| ContentBlock::ToolResult {
                    tool_use_id: id,
                    content: OUTCOME_UNKNOWN.into(),
                    is_error: true,
                });
                match messages.get_mut(i + 1) {
                    Some(next) if next.role == Role::User => {
                        let mut content: Vec<ContentBlock> = results.collect();
                        content.append(&mut next.content);
                        next.content = content;
                    }
                    _ => messages.insert(
                        i + 1,
                        Message {
                            role: Role::User,
                            content: results.collect(),
                        },
                    ),
                }
            }
        }
        i += 1;
    }
}

fn answered(next: Option<&Message>, id: &str) -> bool {
    next.is_some_and(|m| {
        m.content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolResult { tool_use_id, .. } if tool_use_id == id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> ContentBlock {
        ContentBlock::ToolUse {
            id: id.into(),
            name: "exec".into(),
            input: json!({}),
        }
    }

    #[test]
    fn open_calls_get_an_unknown_outcome() {
        let mut h = vec![
            Message::user_text("go"),
            Message {
                role: Role::Assistant,
                content: vec![call("a"), call("b")],
            },
            Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult {
                    tool_use_id: "a".into(),
                    content: "ok".into(),
                    is_error: false,
                }],
            },
            Message {
                role: Role::Assistant,
                content: vec![call("c")],
            },
            Message::user_text("next question"),
        ];
        close_open_tool_calls(&mut h);
        assert_eq!(h.len(), 5);
        let ids = |m: &Message| -> Vec<String> {
            m.content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolResult { tool_use_id, .. } => Some(tool_use_id.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(ids(&h[2]), vec!["b", "a"]);
        assert_eq!(ids(&h[4]), vec!["c"]);
        assert_eq!(h[4].text(), "next question");

        let mut tail = vec![Message {
            role: Role::Assistant,
            content: vec![call("z")],
        }];
        close_open_tool_calls(&mut tail);
        assert_eq!(tail.len(), 2);
        assert_eq!(ids(&tail[1]), vec!["z"]);
    }
}
