//! Showing runs to a person: live events while a turn works, and tables of
//! stored runs.

use std::io::Write;

use cairn_core::{RunEvent, RunRecord, RunStatus};

/// Prints a run's events: answer text to stdout, activity to stderr.
pub fn live_event(e: &RunEvent, quiet: bool) {
    match e {
        RunEvent::TextDelta { text } => {
            use std::io::IsTerminal;
            let mut out = std::io::stdout().lock();
            // A model can be talked into printing escape sequences too; a
            // pipe gets the text exactly.
            let text = if out.is_terminal() {
                std::borrow::Cow::Owned(printable(text))
            } else {
                std::borrow::Cow::Borrowed(text.as_str())
            };
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        _ if quiet => {}
        RunEvent::ResumingRun { run_id } => {
            eprintln!(
                "· first finishing {run_id}, an earlier turn of this session that a stopped process left unfinished"
            );
        }
        RunEvent::WaitingForSession { session_id } => {
            eprintln!("· session {session_id} is busy with another run; waiting for it to finish");
        }
        RunEvent::ToolCall { name, input, .. } => {
            println!();
            eprintln!("→ {name} {}", short(&input.to_string(), 160));
        }
        RunEvent::ToolOutput { chunk, .. } => {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(printable(chunk).as_bytes());
            let _ = err.flush();
        }
        RunEvent::ToolResult {
            name,
            is_error,
            bytes,
            ..
        } => {
            eprintln!(
                "{} {name}: {bytes} bytes{}",
                if *is_error { "✗" } else { "←" },
                if *is_error { " (error)" } else { "" }
            );
        }
        RunEvent::Retrying {
            attempt,
            wait_ms,
            reason,
        } => {
            eprintln!(
                "· {reason}; retrying (attempt {attempt}) in {:.1} s",
                *wait_ms as f64 / 1000.0
            );
        }
        RunEvent::ContextCompacted {
            tokens_before,
            tokens_after,
            messages,
            facts,
        } => {
            eprintln!(
                "· context compacted: {messages} older messages summarized, about {tokens_before} → {tokens_after} tokens{}",
                if *facts > 0 {
                    format!("; {facts} fact(s) saved to memory first")
                } else {
                    String::new()
                }
            );
        }
        RunEvent::MessageJoined { text } => {
            eprintln!("· a new message joined this turn: {}", short(text, 80));
        }
        RunEvent::CoolingDown { until, reason } => {
            eprintln!(
                "· {reason}: cooling down until {}; the run resumes by itself then",
                cairn_runtime::iso(*until)
            );
        }
        RunEvent::RunStarted { .. } | RunEvent::RunFinished { .. } => {}
    }
}

/// A command's output made safe for a terminal: what it printed may come
/// from anywhere (a fetched page, a hostile file), and escape sequences
/// could rewrite the screen or the title, so control characters other than
/// newlines and tabs are shown as `\u{..}` escapes instead.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            // A progress bar's carriage return starts a new line instead of
            // overwriting what was shown.
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => out.push('\n'),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// One line summing up a finished run.
pub fn summary(run: &RunRecord) -> String {
    format!(
        "{} {} · session {} · {} step{} · {} in / {} out tokens · {}",
        run.status.as_str(),
        run.id,
        run.session_id,
        run.steps,
        if run.steps == 1 { "" } else { "s" },
        run.usage.input_tokens,
        run.usage.output_tokens,
        cost(run.cost_usd)
    )
}

/// Dollars, with enough digits for small calls.
pub fn cost(usd: f64) -> String {
    if usd == 0.0 {
        "$0".into()
    } else if usd < 0.01 {
        format!("${usd:.5}")
    } else {
        format!("${usd:.4}")
    }
}

/// A timestamp in local time.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// First `n` chars of `s`, with an ellipsis when cut.
pub fn short(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', "⏎");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n).collect::<String>())
    }
}

/// Exit code for a finished run.
pub fn exit_code(status: RunStatus) -> std::process::ExitCode {
    match status {
        RunStatus::Completed => std::process::ExitCode::SUCCESS,
        RunStatus::Cancelled => std::process::ExitCode::from(130),
        _ => std::process::ExitCode::FAILURE,
    }
}

/// Memory search hits with how each ranked (`--explain`): the full-text
/// rank and score (share of the query's word weight), the cosine and its
/// rank, the relevance, the final score, and whether a prompt gets it
/// (`recalled`, one per hit).
pub fn memory_explain(
    hits: &[cairn_core::MemoryHit],
    recalled: &[bool],
    fusion: &cairn_memory::Fusion,
    semantic: bool,
) -> String {
    let side = |rank: Option<usize>, value: Option<String>| match (rank, value) {
        (Some(r), Some(v)) => format!("#{r} {v}"),
        (None, Some(v)) => format!("- {v}"),
        _ => "-".to_string(),
    };
    let mut out = format!(
        "{:<4}{:<38}{:>11}{:>13}{:>11}{:>8}  {:<9}fact\n",
        "#", "id", "words", "meaning", "relevance", "score", "recalled"
    );
    for (i, (h, recalled)) in hits.iter().zip(recalled).enumerate() {
        out.push_str(&format!(
            "{:<4}{:<38}{:>11}{:>13}{:>11.3}{:>8.3}  {:<9}{}\n",
            i + 1,
            h.memory.id,
            side(h.text_rank, h.lexical.map(|l| format!("{l:.2}"))),
            side(h.vector_rank, h.cosine.map(|c| format!("{c:.3}"))),
            h.relevance,
            h.score,
            if *recalled { "yes" } else { "no" },
            short(&h.memory.text.replace('\n', " "), 100)
        ));
    }
    let rule = if semantic {
        format!(
            "relevance at or above the recall floor ({:.2}), or, when none is, the first if at least {:.2} and {:.2} ahead of the next",
            fusion.floor, fusion.standout_floor, fusion.standout_margin
        )
    } else {
        format!(
            "relevance at or above the recall floor ({:.2}, words only)",
            fusion.words_floor
        )
    };
    out.push_str(&format!(
        "words: full-text rank and share of the query's word weight held; meaning: rank and cosine; \
         recalled (put in a prompt): {rule}\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escape_sequences_in_tool_output_cannot_reach_the_terminal() {
        let hostile = "ok\x1b]0;pwned\x07\x1b[2J\rline\r\nend\tx\u{9b}31m";
        let shown = printable(hostile);
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{shown:?}"
        );
        assert_eq!(
            shown,
            "ok\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\nline\nend\tx\\u{9b}31m"
        );
    }
}
