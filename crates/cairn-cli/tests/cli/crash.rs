//! `kill -9` of a `cairn run` process mid-turn: the next process to touch
//! the session finishes the interrupted turn from its journal — nothing
//! journaled is requested again, no side effect happens twice, nothing is
//! lost.

use std::process::Stdio;
use std::time::Duration;

use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

use crate::*;

fn spawn_run(h: &cairn_testkit::CairnHome, fake: &FakeLlm, args: &[&str]) -> std::process::Child {
    let mut cmd = h.anthropic(fake);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().unwrap()
}

#[test]
fn killed_during_a_side_effecting_command_it_is_not_run_again() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([Reply::tool(
        "exec",
        json!({"command": "echo ran >> side.txt; sleep 30"}),
    )]);
    let mut child = spawn_run(&h, &fake, &["run", "--session", "s", "do the thing"]);
    let side = h.workspace().join("side.txt");
    let start = std::time::Instant::now();
    while !side.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill9(&mut child);
    // The orphaned `sleep` is in the killed process's group; it is not ours to wait for.

    fake.push([
        Reply::text("The command's outcome is unknown; I will not repeat it."),
        Reply::text("second answer"),
    ]);
    let out = ok(
        h.anthropic(&fake),
        &["run", "--session", "s", "next question"],
    );
    assert!(stderr(&out).contains("first finishing"), "{}", stderr(&out));
    assert!(stdout(&out).contains("second answer"));

    assert_eq!(
        std::fs::read_to_string(&side).unwrap(),
        "ran\n",
        "the side effect happened once"
    );
    let reqs = fake.requests();
    assert_eq!(
        reqs.len(),
        3,
        "the first model call was not requested again"
    );
    let resumed = reqs[1].message_texts();
    assert!(
        resumed.iter().any(|t| t.contains("outcome unknown")),
        "{resumed:?}"
    );
    assert_eq!(
        reqs[2].message_texts().first().map(String::as_str),
        Some("do the thing")
    );

    let runs = json(&h, &["runs", "list", "--session", "s"]);
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "completed"]);
    let first = runs[1]["id"].as_str().unwrap();
    let kinds = journal_kinds(&h, first);
    assert_eq!(kinds.iter().filter(|k| *k == "model_result").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "tool_call").count(), 1);
    assert_eq!(
        kinds.iter().filter(|k| *k == "tool_result").count(),
        1,
        "{kinds:?}"
    );
}

#[test]
fn killed_between_steps_a_side_effecting_step_is_not_repeated() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([
        Reply::tool("exec", json!({"command": "echo ran >> side.txt"})),
        Reply::Delayed(
            Duration::from_secs(60),
            Box::new(Reply::text("never delivered")),
        ),
    ]);
    let mut child = spawn_run(&h, &fake, &["run", "--session", "s", "append a line"]);
    wait_for_requests(&fake, 2);
    kill9(&mut child);

    fake.push([Reply::text("appended"), Reply::text("bye")]);
    ok(h.anthropic(&fake), &["run", "--session", "s", "thanks"]);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 4);
    // Step 2 was asked again with exactly the history it had: step 1's
    // response and the command's result came from the store.
    assert_eq!(reqs[2].body["messages"], reqs[1].body["messages"]);
    assert_eq!(
        std::fs::read_to_string(h.workspace().join("side.txt")).unwrap(),
        "ran\n",
        "the command ran once"
    );
    let runs = json(&h, &["runs", "list", "--session", "s"]);
    let first = &runs[1];
    assert_eq!(first["status"], "completed");
    assert_eq!(first["output"], "appended");
    assert_eq!(first["steps"], 2);
    let kinds = journal_kinds(&h, first["id"].as_str().unwrap());
    assert_eq!(
        kinds.iter().filter(|k| *k == "tool_result").count(),
        1,
        "{kinds:?}"
    );
}

/// Results of idempotent tools commit with the next model response (one
/// commit per step instead of two): a crash before that re-runs the calls,
/// which is what idempotent means. The re-run sees the file as it is now.
#[test]
fn killed_after_an_idempotent_step_the_step_is_run_again() {
    let h = home();
    std::fs::create_dir_all(h.workspace()).unwrap();
    std::fs::write(h.workspace().join("a.txt"), "alpha").unwrap();
    let fake = FakeLlm::start();
    fake.push([
        Reply::tool("read_file", json!({"path": "a.txt"})),
        Reply::Delayed(
            Duration::from_secs(60),
            Box::new(Reply::text("never delivered")),
        ),
    ]);
    let mut child = spawn_run(&h, &fake, &["run", "--session", "s", "read a.txt"]);
    wait_for_requests(&fake, 2);
    assert!(
        fake.requests()[1]
            .message_texts()
            .iter()
            .any(|t| t.contains("alpha"))
    );
    kill9(&mut child);
    std::fs::write(h.workspace().join("a.txt"), "beta").unwrap();

    fake.push([Reply::text("a.txt says beta"), Reply::text("bye")]);
    ok(h.anthropic(&fake), &["run", "--session", "s", "thanks"]);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 4, "step 1's model call was not made again");
    assert_eq!(reqs[2].body["messages"][1], reqs[1].body["messages"][1]);
    let resumed = reqs[2].message_texts();
    assert!(resumed.iter().any(|t| t.contains("beta")), "{resumed:?}");
    assert!(!resumed.iter().any(|t| t.contains("alpha")), "{resumed:?}");
    let runs = json(&h, &["runs", "list", "--session", "s"]);
    let first = &runs[1];
    assert_eq!(first["status"], "completed");
    assert_eq!(first["steps"], 2);
    let kinds = journal_kinds(&h, first["id"].as_str().unwrap());
    assert_eq!(
        kinds.iter().filter(|k| *k == "tool_call").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "tool_result").count(),
        1,
        "only the result that was used is journaled: {kinds:?}"
    );
    let roles: Vec<String> = json(&h, &["sessions", "show", "s"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ],
        "one results message, no orphan tool call"
    );
}

#[test]
fn killed_while_the_model_streams_the_call_is_made_again() {
    let h = home();
    let fake = FakeLlm::start();
    let long = "word ".repeat(400);
    fake.push([Reply::Slow(
        Duration::from_millis(50),
        Box::new(Reply::Text(long)),
    )]);
    let mut child = spawn_run(
        &h,
        &fake,
        &["run", "--session", "s", "tell me a long story"],
    );
    wait_for_requests(&fake, 1);
    std::thread::sleep(Duration::from_millis(400));
    kill9(&mut child);

    fake.push([Reply::text("the story"), Reply::text("bye")]);
    ok(h.anthropic(&fake), &["run", "--session", "s", "thanks"]);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        reqs[1].body["messages"], reqs[0].body["messages"],
        "the unfinished call was made again"
    );
    let runs = json(&h, &["runs", "list", "--session", "s"]);
    assert_eq!(runs[1]["output"], "the story");
    let texts = json(&h, &["sessions", "show", "s"]);
    let roles: Vec<&str> = texts
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant"],
        "no half-streamed answer was kept"
    );
}
