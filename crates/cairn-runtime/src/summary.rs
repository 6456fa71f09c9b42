//! The pure parts of compaction: where to cut a history so no tool result
//! loses its call, how the cut-off part is shown to the summarizing model,
//! and how its answer is read.

use cairn_core::{ContentBlock, Message, Role};
use cairn_llm::tokens::TokenCounter;

/// Bytes of one block kept in the transcript the summarizer reads (head
/// and tail); a summary needs the gist of a long tool output, not all of it.
const TRANSCRIPT_BLOCK_BYTES: usize = 6_000;

/// Instructions for the summarizing call.
pub(crate) const SUMMARIZER_PROMPT: &str = "You compact the conversation of an AI agent so that it can go on with its work in a shorter context. \
You are given a transcript, and possibly a summary of what came before it. Reply in exactly this format:\n\
<facts>\n\
- one durable fact per line that is worth remembering beyond this conversation: who the user is, their preferences, names, decisions, commitments, where things are kept. Never secrets. Leave the block empty if there are none.\n\
</facts>\n\
<summary>\n\
A faithful, concise account written to the agent (\"you\"): what the user asked for, with exact requirements quoted; what was done and found (files, commands, results that matter); decisions made; what remains to do.\n\
</summary>";

/// Where to cut `messages` (a session's context, oldest first): the index
/// of the first message kept. Everything before it is summarized. The kept
/// part starts with an assistant message, so each tool result it holds
/// follows its call, and it is the longest such part within `tail_budget`
/// tokens; when none fits, everything is summarized (`messages.len()`).
/// At least one message is always summarized.
pub(crate) fn split_point(messages: &[Message], counter: TokenCounter, tail_budget: u64) -> usize {
    let mut tail = 0u64;
    let mut best = messages.len();
    for k in (1..messages.len()).rev() {
        tail += counter.message(&messages[k]);
        if tail > tail_budget {
            break;
        }
        if messages[k].role == Role::Assistant {
            best = k;
        }
    }
    best
}

/// The messages as plain text for the summarizer, each block capped.
pub(crate) fn transcript(messages: &[Message]) -> Vec<String> {
    let mut out = Vec::new();
    for m in messages {
        for b in &m.content {
            out.push(match (m.role, b) {
                (Role::User, ContentBlock::Text { text }) => format!("[user] {}", cap(text)),
                (Role::Assistant, ContentBlock::Text { text }) => {
                    format!("[assistant] {}", cap(text))
                }
                (_, ContentBlock::ToolUse { name, input, .. }) => {
                    format!("[assistant calls {name}] {}", cap(&input.to_string()))
                }
                (
                    _,
                    ContentBlock::ToolResult {
                        content, is_error, ..
                    },
                ) => format!(
                    "[tool result{}] {}",
                    if *is_error { ", error" } else { "" },
                    cap(content)
                ),
            });
        }
    }
    out
}

/// Groups transcript lines into chunks of at most `max_bytes` each (a line
/// longer than that is cut to fit).
pub(crate) fn chunks(lines: Vec<String>, max_bytes: usize) -> Vec<String> {
    let max_bytes = max_bytes.max(256);
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in lines {
        let line = if line.len() > max_bytes {
            head_tail(&line, max_bytes)
        } else {
            line
        };
        if !current.is_empty() && current.len() + line.len() + 1 > max_bytes {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The user message of one summarizing call.
pub(crate) fn request_text(previous: Option<&str>, chunk: &str) -> String {
    match previous {
        Some(p) => format!(
            "Summary of the conversation before this part:\n{p}\n\nTranscript of the part to add to it:\n{chunk}"
        ),
        None => format!("Transcript:\n{chunk}"),
    }
}

/// What the summarizer answered.
#[derive(Debug, PartialEq)]
pub(crate) struct Summarized {
    /// Durable facts, one per entry.
    pub facts: Vec<String>,
    /// The summary.
    pub summary: String,
}

/// Reads `<facts>` and `<summary>` from an answer; an answer without the
/// tags is all summary.
pub(crate) fn parse_answer(answer: &str) -> Summarized {
    let facts = between(answer, "<facts>", "</facts>")
        .map(|block| {
            block
                .lines()
                .map(|l| l.trim().trim_start_matches(['-', '*', '•']).trim())
                .filter(|l| !l.is_empty() && !l.eq_ignore_ascii_case("none"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let summary = match between(answer, "<summary>", "</summary>") {
        Some(s) => s.trim().to_string(),
        None => {
            // No summary tags: whatever is not the facts block.
            let without = match (answer.find("<facts>"), answer.find("</facts>")) {
                (Some(a), Some(b)) if b > a => {
                    format!("{}{}", &answer[..a], &answer[b + "</facts>".len()..])
                }
                _ => answer.to_string(),
            };
            without.replace("<summary>", "").trim().to_string()
        }
    };
    Summarized { facts, summary }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..]
        .find(close)
        .map(|e| start + e)
        .unwrap_or(text.len());
    Some(&text[start..end])
}

fn cap(text: &str) -> String {
    if text.len() <= TRANSCRIPT_BLOCK_BYTES {
        text.to_string()
    } else {
        head_tail(text, TRANSCRIPT_BLOCK_BYTES)
    }
}

/// The first and last parts of `text`, `max` bytes in all, on char bounds.
pub(crate) fn head_tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let marker = format!(" […{} bytes cut…] ", text.len().saturating_sub(max));
    let keep = max.saturating_sub(marker.len()) / 2;
    let mut head = keep.min(text.len());
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len().saturating_sub(keep);
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}{marker}{}", &text[..head], &text[tail..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> Message {
        Message {
            role: Role::Assistant,
            content: vec![ContentBlock::ToolUse {
                id: id.into(),
                name: "read_file".into(),
                input: json!({"path": "a.txt"}),
            }],
        }
    }

    fn result(id: &str, bytes: usize) -> Message {
        Message {
            role: Role::User,
            content: vec![ContentBlock::ToolResult {
                tool_use_id: id.into(),
                content: "x".repeat(bytes),
                is_error: false,
            }],
        }
    }

    #[test]
    fn the_kept_part_never_starts_with_an_orphan_tool_result() {
        let counter = TokenCounter::new(4.0);
        let h = vec![
            Message::user_text("read the files"),
            call("a"),
            result("a", 4000),
            call("b"),
            result("b", 400),
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::Text {
                    text: "done".into(),
                }],
            },
        ];
        for budget in [0, 10, 50, 130, 200, 1000, 1200, 100_000] {
            let k = split_point(&h, counter, budget);
            assert!(k >= 1, "budget {budget}: something is summarized");
            if k < h.len() {
                assert_eq!(h[k].role, Role::Assistant, "budget {budget}");
                let tail: u64 = h[k..].iter().map(|m| counter.message(m)).sum();
                assert!(tail <= budget, "budget {budget}: tail {tail}");
            }
        }
        // Room for the last call and its result but not the big one.
        assert_eq!(split_point(&h, counter, 200), 3);
        // Nothing fits: all of it is summarized.
        assert_eq!(split_point(&h, counter, 5), h.len());
        // Everything but the first message fits.
        assert_eq!(split_point(&h, counter, 100_000), 1);
    }

    #[test]
    fn answers_are_read_with_and_without_tags() {
        let a = parse_answer(
            "<facts>\n- The user's name is Ada.\n* Deploys go to orion.\nnone\n</facts>\n<summary>\nYou read two files.\n</summary>",
        );
        assert_eq!(
            a.facts,
            vec!["The user's name is Ada.", "Deploys go to orion."]
        );
        assert_eq!(a.summary, "You read two files.");
        let b = parse_answer("Just a summary.");
        assert!(b.facts.is_empty());
        assert_eq!(b.summary, "Just a summary.");
        let c = parse_answer("<facts>\n</facts>\nThe rest.");
        assert_eq!(c.summary, "The rest.");
    }

    #[test]
    fn chunks_respect_their_size_and_keep_everything_small() {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("line {i} {}", "y".repeat(90)))
            .collect();
        let total: usize = lines.iter().map(std::string::String::len).sum();
        let cs = chunks(lines, 1000);
        assert!(cs.iter().all(|c| c.len() <= 1000));
        assert!(cs.len() >= total / 1000);
        assert!(cs.concat().contains("line 49"));
        let huge = chunks(vec!["é".repeat(5000)], 1000);
        assert_eq!(huge.len(), 1);
        assert!(huge[0].len() <= 1000);
    }
}
