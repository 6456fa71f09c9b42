//! Working memory through the binary: a long task in a local model's small
//! window is compacted (facts saved first, originals kept, tool calls never
//! split from their results) and no request ever exceeds the window; a
//! provider's context-overflow error is handled by one compaction and a
//! retry; a window too small for anything fails clearly, without a loop.

use cairn_testkit::{FakeLlm, Reply, fake_prompt_tokens};
use serde_json::json;

use crate::*;

/// What the summarizer's instructions contain (routes its calls).
const SUMMARIZER: &str = "You compact the conversation of an AI agent";

const SUMMARY: &str = "<facts>\n- The user's project is called Nimbus.\n- Quarterly reports are due on Fridays.\n</facts>\n<summary>\nYou read a.txt, b.txt and c.txt for the user; they hold the Nimbus quarterly figures.\n</summary>";

fn write_files(h: &cairn_testkit::CairnHome) {
    std::fs::create_dir_all(h.workspace()).unwrap();
    for (name, word) in [
        ("a.txt", "ALPHA"),
        ("b.txt", "BRAVO"),
        ("c.txt", "CHARLIE"),
        ("d.txt", "DELTA"),
    ] {
        let body: String = (0..500).map(|i| format!("{word}-{i:04} ")).collect();
        std::fs::write(h.workspace().join(name), body).unwrap();
    }
}

/// The model reads a.txt to d.txt, one call each, then answers.
fn read_the_four_files() -> Vec<Reply> {
    let mut replies: Vec<Reply> = ["a.txt", "b.txt", "c.txt", "d.txt"]
        .iter()
        .map(|f| Reply::tool("read_file", json!({"path": f})))
        .collect();
    replies.push(Reply::text("All four files read."));
    replies
}

/// `cairn` against the fake as a local OpenAI-compatible server: no key,
/// no model set (the first listed is used), so the window is the default
/// for unknown models, 8192 tokens.
fn local(h: &cairn_testkit::CairnHome, fake: &FakeLlm) -> std::process::Command {
    let mut c = h.cmd();
    c.env("OPENAI_BASE_URL", fake.openai_url())
        // The sizes below are planned for these tools' definitions.
        .env(
            "CAIRN_AGENTS__DEFAULT__TOOLS",
            r#"["read_file", "memory_search"]"#,
        );
    c
}

#[test]
fn a_long_task_in_a_small_local_window_is_compacted_and_every_request_fits() {
    let h = home();
    write_files(&h);
    let fake = FakeLlm::start();
    fake.set_context_window(8192);
    fake.push_when(SUMMARIZER, [Reply::text(SUMMARY)]);
    fake.push(read_the_four_files());
    let request = "Read a.txt, b.txt, c.txt and d.txt and tell me when you are done.";
    let out = ok(local(&h, &fake), &["run", "--session", "work", request]);
    assert!(
        stdout(&out).contains("All four files read."),
        "{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("context compacted"),
        "the person sees it: {}",
        stderr(&out)
    );

    // No request exceeded the model's window.
    assert_eq!(fake.overflows(), 0);
    let reqs = fake.requests();
    for r in &reqs {
        assert!(fake_prompt_tokens(&r.body) <= 8192);
    }
    let summaries: Vec<_> = reqs
        .iter()
        .filter(|r| r.body.to_string().contains(SUMMARIZER))
        .collect();
    assert_eq!(summaries.len(), 1, "one compaction");
    // The summarizer read what it summarizes.
    assert!(summaries[0].body.to_string().contains("ALPHA-0001"));

    // After it, the model sees the summary and the request verbatim, not
    // the compacted tool outputs.
    let last = reqs.last().unwrap().body.to_string();
    assert!(last.contains("Earlier conversation, compacted"), "{last}");
    assert!(last.contains("hold the Nimbus quarterly figures"));
    assert!(last.contains(request));
    assert!(!last.contains("ALPHA-0001"));
    assert!(last.contains("DELTA-0001"), "the newest result is kept");

    // The durable facts were saved to semantic memory, marked as such.
    let facts = json(&h, &["memory", "list"]);
    let texts: Vec<&str> = facts
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"The user's project is called Nimbus."),
        "{facts:#}"
    );
    assert!(texts.contains(&"Quarterly reports are due on Fridays."));
    assert!(
        facts[0]["source"]
            .as_str()
            .unwrap()
            .starts_with("compaction:run_")
    );

    // The original messages stay in the session (episodic memory): the
    // request, 5 answers, 4 tool results.
    let messages = json(&h, &["sessions", "show", "work"]);
    assert_eq!(messages.as_array().unwrap().len(), 10);
    let hits = json(&h, &["memory", "search", "--episodic", "ALPHA-0001"]);
    assert!(!hits.as_array().unwrap().is_empty(), "{hits:#}");

    // The journal records it, between the steps.
    let runs = json(&h, &["runs", "list"]);
    let run_id = runs[0]["id"].as_str().unwrap();
    let kinds = journal_kinds(&h, run_id);
    assert!(kinds.contains(&"compaction_start".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"compaction".to_string()), "{kinds:?}");
    assert_eq!(runs[0]["status"], "completed");

    // The next turn of the session starts from the summary.
    fake.push([Reply::text("It held the CHARLIE figures.")]);
    ok(
        local(&h, &fake),
        &["run", "--session", "work", "what was in c.txt?"],
    );
    let next = fake.requests().last().unwrap().body.to_string();
    assert!(next.contains("Earlier conversation, compacted"));
    assert!(!next.contains("ALPHA-0001"));
    assert!(next.contains("what was in c.txt?"));
    assert_eq!(fake.overflows(), 0);
}

#[test]
fn a_context_overflow_from_the_provider_is_compacted_once_and_retried() {
    let h = home();
    write_files(&h);
    let fake = FakeLlm::start();
    // Turn 1 on a model cairn believes has 200k tokens (Claude).
    fake.push([
        Reply::tool("read_file", json!({"path": "a.txt"})),
        Reply::tool("read_file", json!({"path": "b.txt"})),
        Reply::text("Read both."),
    ]);
    ok(
        h.anthropic(&fake),
        &["run", "--session", "s", "read a.txt and b.txt"],
    );
    // The deployment's real window is smaller than that: the next turn's
    // request will not fit.
    let window = fake_prompt_tokens(&fake.requests().last().unwrap().body) - 100;
    fake.set_context_window(window);
    // In a window this small the history is summarized in two parts.
    fake.push_when(SUMMARIZER, [Reply::text(SUMMARY), Reply::text(SUMMARY)]);
    fake.push([Reply::text("Next, c.txt.")]);
    let before = fake.requests().len();
    let out = ok(h.anthropic(&fake), &["run", "--session", "s", "what next?"]);
    assert!(stdout(&out).contains("Next, c.txt."), "{}", describe(&out));
    assert_eq!(fake.overflows(), 1, "refused once, then it fit");
    let reqs = &fake.requests()[before..];
    assert_eq!(reqs.len(), 4, "the call, two summaries, the call again");
    assert!(
        reqs[1..3]
            .iter()
            .all(|r| r.body.to_string().contains(SUMMARIZER))
    );
    assert!(
        reqs.iter()
            .all(|r| fake_prompt_tokens(&r.body) <= window || r.body == reqs[0].body)
    );
    // The second part is summarized on top of the first.
    assert!(
        reqs[2]
            .body
            .to_string()
            .contains("Summary of the conversation before this part")
    );

    let runs = json(&h, &["runs", "list"]);
    let detail = json(&h, &["runs", "show", runs[0]["id"].as_str().unwrap()]);
    let journal = detail["journal"].as_array().unwrap();
    let overflow = journal
        .iter()
        .find(|e| e["payload"]["context_overflow"] == true)
        .expect("the refused call is journaled as such");
    assert!(
        overflow["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("prompt is too long")
    );
    assert!(journal.iter().any(|e| e["kind"] == "compaction"));
}

#[test]
fn a_window_too_small_for_the_prompt_fails_clearly_without_a_loop() {
    let h = home();
    let fake = FakeLlm::start();
    // Smaller than the system prompt and tool definitions alone.
    fake.set_context_window(300);
    fake.push([Reply::text("never sent")]);
    let out = run(h.anthropic(&fake), &["run", "hello"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out) + &stdout(&out);
    assert!(err.contains("context window"), "{err}");
    assert!(err.contains("cannot be made to fit"), "{err}");
    assert_eq!(fake.requests().len(), 1, "one refused call, nothing more");
    assert_eq!(fake.overflows(), 1);
}

#[test]
fn killed_while_compacting_the_run_compacts_again_once_and_nothing_is_doubled() {
    let h = home();
    write_files(&h);
    let fake = FakeLlm::start();
    fake.set_context_window(8192);
    // The first summary never comes: the process is killed waiting for it.
    fake.push_when(
        SUMMARIZER,
        [Reply::Delayed(
            std::time::Duration::from_secs(60),
            Box::new(Reply::text(SUMMARY)),
        )],
    );
    fake.push(read_the_four_files());
    let mut cmd = local(&h, &fake);
    cmd.args(["run", "--session", "work", "read a.txt to d.txt"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    while !fake
        .requests()
        .iter()
        .any(|r| r.body.to_string().contains(SUMMARIZER))
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "never compacted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    kill9(&mut child);

    // The next process in the session finishes the interrupted turn first.
    fake.push_when(SUMMARIZER, [Reply::text(SUMMARY)]);
    fake.push([Reply::text("second answer")]);
    let out = ok(local(&h, &fake), &["run", "--session", "work", "and now?"]);
    assert!(stderr(&out).contains("first finishing"), "{}", stderr(&out));
    assert!(stdout(&out).contains("second answer"));

    let reqs = fake.requests();
    let summaries = reqs
        .iter()
        .filter(|r| r.body.to_string().contains(SUMMARIZER))
        .count();
    assert_eq!(summaries, 2, "the killed summary was asked again, once");
    assert_eq!(
        reqs.len(),
        5 + 1 + summaries,
        "no conversation call was repeated"
    );
    assert_eq!(fake.overflows(), 0);

    let runs = json(&h, &["runs", "list"]);
    let first = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["input"] == "read a.txt to d.txt")
        .unwrap();
    assert_eq!(first["status"], "completed");
    let kinds = journal_kinds(&h, first["id"].as_str().unwrap());
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    assert_eq!(count("compaction_start"), 2, "{kinds:?}");
    assert_eq!(count("compaction"), 1, "{kinds:?}");
    // The facts were saved once each.
    let facts = json(&h, &["memory", "list"]);
    assert_eq!(facts.as_array().unwrap().len(), 2, "{facts:#}");
}
