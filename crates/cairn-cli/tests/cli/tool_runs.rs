//! Tool-using runs with each provider and both streaming modes.

use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

use crate::*;

#[test]
fn tool_using_run_with_each_provider_and_mode() {
    for provider in ["anthropic", "openai"] {
        for stream in [true, false] {
            let h = home();
            let fake = FakeLlm::start();
            fake.push([
                Reply::tool(
                    "write_file",
                    json!({"path": "notes.txt", "content": "hello"}),
                ),
                Reply::tool("exec", json!({"command": "wc -c < notes.txt"})),
                Reply::text("notes.txt holds 5 bytes."),
            ]);
            let cmd = if provider == "anthropic" {
                h.anthropic(&fake)
            } else {
                h.openai(&fake)
            };
            let mut args = vec![
                "run",
                "create notes.txt containing the word hello, then tell me its size",
            ];
            if !stream {
                args.push("--no-stream");
            }
            let out = ok(cmd, &args);
            let label = format!("{provider} stream={stream}");
            assert!(
                stdout(&out).contains("notes.txt holds 5 bytes."),
                "{label}: {}",
                stdout(&out)
            );
            assert!(
                stderr(&out).contains("→ write_file"),
                "{label}: {}",
                stderr(&out)
            );
            assert_eq!(
                std::fs::read_to_string(h.workspace().join("notes.txt")).unwrap(),
                "hello",
                "{label}"
            );

            let reqs = fake.requests();
            assert_eq!(reqs.len(), 3, "{label}");
            assert!(reqs.iter().all(|r| r.stream() == stream), "{label}");
            // The exec result went back to the model.
            assert!(
                reqs[2]
                    .message_texts()
                    .iter()
                    .any(|t| t.contains("exit code: 0") && t.contains('5')),
                "{label}: {:?}",
                reqs[2].message_texts()
            );

            let runs = json(&h, &["runs", "list"]);
            let run = &runs[0];
            assert_eq!(run["status"], "completed", "{label}");
            assert_eq!(run["steps"], 3);
            assert!(run["usage"]["input_tokens"].as_u64().unwrap() > 0);
            assert_eq!(run["provider"], provider);
            if provider == "anthropic" {
                assert!(
                    run["cost_usd"].as_f64().unwrap() > 0.0,
                    "claude-sonnet-4-5 has a price"
                );
            }
            let kinds = journal_kinds(&h, run["id"].as_str().unwrap());
            assert_eq!(
                kinds,
                [
                    "model_call",
                    "model_result",
                    "tool_call",
                    "tool_result",
                    "model_call",
                    "model_result",
                    "tool_call",
                    "tool_result",
                    "model_call",
                    "model_result",
                    "run_end"
                ],
                "{label}"
            );
            // The human-readable view shows the same steps.
            let show = ok(
                h.cmd(),
                &["runs", "show", &run["id"].as_str().unwrap()[..12]],
            );
            assert!(
                stdout(&show).contains("tool call    exec"),
                "{}",
                stdout(&show)
            );
        }
    }
}

#[test]
fn parallel_tool_calls_all_run_and_all_results_return() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([
        Reply::tools(vec![
            ("exec", json!({"command": "sleep 1; echo a > a.txt"})),
            ("exec", json!({"command": "sleep 1; echo b > b.txt"})),
            ("list_dir", json!({})),
        ]),
        Reply::text("done"),
    ]);
    let started = std::time::Instant::now();
    ok(h.anthropic(&fake), &["run", "make two files"]);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1900),
        "the two 1 s commands ran in parallel"
    );
    assert!(h.workspace().join("a.txt").exists() && h.workspace().join("b.txt").exists());
    let last = &fake.requests()[1];
    let results = last.body["messages"][2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["type"] == "tool_result"));
}

#[test]
fn a_session_remembers_across_processes() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([
        Reply::text("Noted: your favourite colour is teal."),
        Reply::text("You told me your favourite colour is teal."),
    ]);
    ok(
        h.anthropic(&fake),
        &["run", "--session", "work", "my favourite colour is teal"],
    );
    let out = ok(
        h.anthropic(&fake),
        &["run", "--session", "work", "what did I ask you before?"],
    );
    assert!(stdout(&out).contains("teal"));
    let second = &fake.requests()[1];
    assert_eq!(
        second.message_texts(),
        [
            "my favourite colour is teal",
            "Noted: your favourite colour is teal.",
            "what did I ask you before?"
        ]
    );
    // A run without --session starts fresh.
    fake.push([Reply::text("hi")]);
    ok(h.anthropic(&fake), &["run", "hello"]);
    assert_eq!(fake.requests()[2].message_texts(), ["hello"]);
    let session = json(&h, &["sessions", "show", "work"]);
    assert_eq!(session.as_array().unwrap().len(), 4);
}

#[test]
fn the_model_cannot_leave_the_workspace() {
    let h = home();
    let fake = FakeLlm::start();
    let outside = h.path().join("escaped.txt");
    std::fs::create_dir_all(h.workspace()).unwrap();
    std::os::unix::fs::symlink(h.path(), h.workspace().join("up")).unwrap();
    fake.push([
        Reply::tools(vec![
            (
                "write_file",
                json!({"path": "../escaped.txt", "content": "x"}),
            ),
            (
                "write_file",
                json!({"path": outside.to_str().unwrap(), "content": "x"}),
            ),
            (
                "write_file",
                json!({"path": "up/escaped.txt", "content": "x"}),
            ),
            ("read_file", json!({"path": "/etc/passwd"})),
        ]),
        Reply::text("I could not do that."),
    ]);
    ok(h.anthropic(&fake), &["run", "escape"]);
    assert!(!outside.exists());
    let results = fake.requests()[1].body["messages"][2]["content"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), 4);
    for r in results {
        assert_eq!(r["is_error"], true, "{r}");
        assert!(r["content"].as_str().unwrap().contains("refused"), "{r}");
    }
}

#[test]
fn commands_never_see_the_provider_keys() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([
        Reply::tool("exec", json!({"command": "env > env.txt"})),
        Reply::text("ok"),
    ]);
    let mut cmd = h.anthropic(&fake);
    cmd.env("OPENAI_API_KEY", "sk-openai-secret")
        .env("GITHUB_TOKEN", "ghp-secret");
    ok(cmd, &["run", "dump env"]);
    let env = std::fs::read_to_string(h.workspace().join("env.txt")).unwrap();
    assert!(
        env.contains("PATH="),
        "the command did run with an environment"
    );
    for secret in [
        "sk-ant-test",
        "sk-openai-secret",
        "ghp-secret",
        "CAIRN_HOME",
    ] {
        assert!(
            !env.contains(secret),
            "{secret} leaked into the tool environment"
        );
    }
}

#[test]
fn invalid_tool_arguments_are_told_to_the_model_which_recovers() {
    for provider in ["anthropic", "openai"] {
        let h = home();
        let fake = FakeLlm::start();
        fake.push([
            Reply::RawToolCall {
                name: "write_file".into(),
                arguments: "{\"path\": \"a.txt\", \"content\": ".into(),
            },
            Reply::tool("write_file", json!({"path": "a.txt", "content": "fixed"})),
            Reply::text("written"),
        ]);
        let cmd = if provider == "anthropic" {
            h.anthropic(&fake)
        } else {
            h.openai(&fake)
        };
        let out = ok(cmd, &["run", "write a.txt"]);
        assert!(stdout(&out).contains("written"));
        assert_eq!(
            std::fs::read_to_string(h.workspace().join("a.txt")).unwrap(),
            "fixed"
        );
        let texts = fake.requests()[1].message_texts();
        assert!(
            texts.iter().any(|t| t.contains("not a valid JSON object")),
            "{provider}: {texts:?}"
        );
    }
}

#[test]
fn the_step_limit_stops_a_looping_model() {
    let h = home();
    let fake = FakeLlm::start();
    for _ in 0..5 {
        fake.push([Reply::tool("list_dir", json!({}))]);
    }
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_AGENTS__DEFAULT__MAX_STEPS", "3");
    let out = run(cmd, &["run", "loop"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        cairn_testkit::describe(&out)
    );
    assert!(
        stderr(&out).contains("step limit reached"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(json(&h, &["runs", "list"])[0]["status"], "failed");
}

#[test]
fn ctrl_c_cancels_the_turn_and_frees_the_session() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([Reply::tool("exec", json!({"command": "sleep 60"}))]);
    let mut cmd = h.anthropic(&fake);
    cmd.args(["run", "--session", "s1", "wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_for_requests(&fake, 1);
    // Let the exec start, then interrupt.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        cairn_testkit::describe(&out)
    );
    let run = &json(&h, &["runs", "list"])[0];
    assert_eq!(run["status"], "cancelled");
    // The session is free again: the next turn proceeds without waiting, and
    // the model sees the cancelled call's result.
    fake.push([Reply::text("ok")]);
    let out = ok(h.anthropic(&fake), &["run", "--session", "s1", "again"]);
    assert!(!stderr(&out).contains("busy"), "{}", stderr(&out));
    let texts = fake.requests()[1].message_texts();
    assert!(texts.iter().any(|t| t.contains("cancelled")), "{texts:?}");
}

#[test]
fn chat_streams_answers_and_keeps_one_session() {
    use std::io::Write;
    let h = home();
    let fake = FakeLlm::start();
    fake.push([
        Reply::text("Hello! How can I help?"),
        Reply::text("You said hello."),
    ]);
    let mut cmd = h.anthropic(&fake);
    cmd.args(["chat", "--session", "talk"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    wait_for_requests(&fake, 1);
    stdin.write_all(b"/session\nwhat did I say?\n").unwrap();
    wait_for_requests(&fake, 2);
    stdin.write_all(b"/exit\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", cairn_testkit::describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Hello! How can I help?") && text.contains("You said hello."),
        "{text}"
    );
    assert!(stderr(&out).contains("session talk"), "{}", stderr(&out));
    assert_eq!(
        fake.requests()[1].message_texts(),
        ["hello", "Hello! How can I help?", "what did I say?"]
    );
}
