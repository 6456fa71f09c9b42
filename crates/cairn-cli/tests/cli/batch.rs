//! `cairn batch`: one run per input item through the server, bounded,
//! with results written as they arrive, failures retried then listed,
//! and running the command again resuming instead of starting over.

use std::time::Duration;

use cairn_testkit::{CairnHome, FakeLlm, LoggedProcess, Reply, ServerProcess};
use serde_json::Value;

use crate::*;

/// The `item-NNNN` marker in a request, if any.
pub fn item_of(body: &Value) -> Option<String> {
    let text = body.to_string();
    let at = text.find("item-")?;
    Some(text[at..at + 9].to_string())
}

fn batch_cmd(h: &CairnHome, args: &[&str]) -> LoggedProcess {
    let mut cmd = h.cmd();
    cmd.arg("batch").args(args);
    LoggedProcess::spawn(cmd)
}

#[test]
fn a_directory_fans_out_results_are_written_failures_listed_and_a_rerun_resumes() {
    let fake = FakeLlm::start();
    fake.respond_with(|body| {
        let item = item_of(body)?;
        if item == "item-bad!" {
            return Some(Reply::error(400, "this document cannot be summarised"));
        }
        Some(Reply::text(&format!("summary of {item}")))
    });
    let h = home();
    let _server = ServerProcess::start(h.anthropic(&fake));
    let docs = h.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..30 {
        std::fs::write(
            docs.join(format!("doc-{i:02}.txt")),
            format!("item-{i:04} text"),
        )
        .unwrap();
    }
    std::fs::write(docs.join("zz-bad.txt"), "item-bad! text").unwrap();
    let out = h.path().join("summaries");
    let args = [
        "run",
        "--input-dir",
        docs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--concurrency",
        "4",
        "--attempts",
        "2",
        "--name",
        "docs",
    ];
    let mut first = batch_cmd(&h, &args);
    let code = first.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(2), "failures make exit code 2:\n{}", first.log());
    let log = first.log();
    assert!(log.contains("31 items"), "{log}");
    assert!(
        log.contains("failed: zz-bad.txt after 2 attempts") && log.contains("cannot be summarised"),
        "{log}"
    );
    for i in 0..30 {
        let text = std::fs::read_to_string(out.join(format!("doc-{i:02}.txt.md"))).unwrap();
        assert_eq!(text, format!("summary of item-{i:04}"));
    }
    assert!(!out.join("zz-bad.txt.md").exists());
    // 30 answers and 2 refusals: nothing asked twice.
    let asked = fake.requests().len();
    assert_eq!(asked, 32, "one model call per run");

    let status = stdout(&ok(h.cmd(), &["batch", "status", "docs"]));
    assert!(status.contains("30/31 done, 1 failed"), "{status}");
    // Again: resumed, finished already, nothing new is run.
    std::fs::remove_file(out.join("doc-07.txt.md")).unwrap();
    let mut again = batch_cmd(&h, &args);
    assert_eq!(
        again.wait_exit(Duration::from_secs(30)),
        Some(2),
        "{}",
        again.log()
    );
    assert!(
        again.log().contains("resuming batch docs"),
        "{}",
        again.log()
    );
    assert_eq!(fake.requests().len(), asked);
    assert!(
        out.join("doc-07.txt.md").exists(),
        "a missing result is written again"
    );
}

#[test]
fn bad_batch_input_is_refused_clearly() {
    let h = home();
    let out = h.path().join("out");
    let missing = run(
        h.cmd(),
        &[
            "batch",
            "run",
            "--input-dir",
            "/nonexistent/docs",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("/nonexistent/docs"),
        "{}",
        stderr(&missing)
    );
    let empty = h.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let none = run(
        h.cmd(),
        &[
            "batch",
            "run",
            "--input-dir",
            empty.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        stderr(&none).contains("holds no items"),
        "{}",
        stderr(&none)
    );
    let jsonl = h.path().join("items.jsonl");
    std::fs::write(&jsonl, "{\"input\": \"one\"}\n{\"nope\": 1}\n").unwrap();
    let bad = run(
        h.cmd(),
        &[
            "batch",
            "run",
            "--input-jsonl",
            jsonl.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(stderr(&bad).contains("items.jsonl:2"), "{}", stderr(&bad));
    let unknown = run(h.cmd(), &["batch", "status", "nope"]);
    assert!(
        stderr(&unknown).contains("no batch"),
        "{}",
        stderr(&unknown)
    );
    // The same name for other inputs is refused, not mixed.
    std::fs::write(&jsonl, "\"one\"\n\"two\"\n").unwrap();
    let first = run(
        h.cmd(),
        &[
            "batch",
            "run",
            "--input-jsonl",
            jsonl.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--name",
            "b",
            "--detach",
        ],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    std::fs::write(&jsonl, "\"one\"\n\"two\"\n\"three\"\n").unwrap();
    let clash = run(
        h.cmd(),
        &[
            "batch",
            "run",
            "--input-jsonl",
            jsonl.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--name",
            "b",
        ],
    );
    assert!(!clash.status.success());
    assert!(
        stderr(&clash).contains("exists with 2 items"),
        "{}",
        stderr(&clash)
    );
}
