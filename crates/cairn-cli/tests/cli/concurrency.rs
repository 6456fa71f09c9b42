//! Several processes on one session: every turn kept, in order, none lost.

use std::process::Stdio;
use std::time::Duration;

use cairn_testkit::{FakeLlm, Reply};

use crate::*;

#[test]
fn concurrent_runs_on_one_session_are_serialized_and_all_kept() {
    let h = home();
    ok(h.cmd(), &["init"]);
    let fake = FakeLlm::start();
    // The first turn's model call is slow, so the others arrive while it holds the session.
    fake.push([
        Reply::Delayed(
            Duration::from_millis(800),
            Box::new(Reply::text("answer 1")),
        ),
        Reply::text("answer 2"),
        Reply::text("answer 3"),
    ]);
    let spawn = |msg: &str| {
        let mut cmd = h.anthropic(&fake);
        cmd.args(["run", "--session", "shared", msg])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let first = spawn("question 1");
    wait_for_requests(&fake, 1);
    let others = [spawn("question 2"), spawn("question 3")];
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fake.requests().len(),
        1,
        "the others wait for the session instead of running beside it"
    );
    let mut outputs = vec![first.wait_with_output().unwrap()];
    for c in others {
        outputs.push(c.wait_with_output().unwrap());
    }
    for o in &outputs {
        assert!(o.status.success(), "{}", cairn_testkit::describe(o));
    }
    assert!(
        outputs[1..].iter().any(|o| stderr(o).contains("busy")),
        "a waiting run says why it waits"
    );

    let messages = json(&h, &["sessions", "show", "shared"]);
    let texts: Vec<String> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.len(), 6, "{texts:?}");
    // Strict alternation: each question directly followed by its answer.
    assert_eq!(texts[0], "question 1");
    assert_eq!(texts[1], "answer 1");
    for pair in texts.chunks(2) {
        assert!(
            pair[0].starts_with("question") && pair[1].starts_with("answer"),
            "{texts:?}"
        );
    }
    // The third model call saw the whole history before it.
    let last = &fake.requests()[2];
    assert_eq!(last.message_texts().len(), 5);
    let runs = json(&h, &["runs", "list", "--session", "shared"]);
    assert_eq!(runs.as_array().unwrap().len(), 3);
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "completed")
    );
}
