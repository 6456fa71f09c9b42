//! cairn as an MCP server, driven by the official MCP Python SDK over stdio
//! (`cairn mcp`) and streamable HTTP (`/mcp` on `cairn serve`).

use std::process::Command;

use cairn_testkit::{CairnHome, FakeLlm, Reply, ServerProcess, test_python};
use serde_json::{Value, json};

use crate::browser_guard::raw_request;
use crate::*;

/// The script the model follows for the client's `ask_agent`.
fn script(fake: &FakeLlm) {
    fake.push([
        Reply::tool("exec", json!({"command": "cat notes.txt"})),
        Reply::text("The notes say: buy rope."),
    ]);
}

/// A home whose agent has a notes file and a saved fact, and a fake LLM
/// scripted for the client's `ask_agent`.
fn prepared() -> (CairnHome, FakeLlm) {
    let h = home();
    let fake = FakeLlm::start();
    std::fs::create_dir_all(h.workspace()).unwrap();
    std::fs::write(h.workspace().join("notes.txt"), "buy rope").unwrap();
    ok(
        h.cmd(),
        &["memory", "save", "The staging server is called orion."],
    );
    script(&fake);
    (h, fake)
}

/// Runs the Python client with `cairn`'s environment and returns its report.
fn client(cairn: &Command, args: &[&str]) -> Value {
    let mut py = Command::new(test_python());
    py.arg(cairn_testkit::repo_path(
        "crates/cairn-cli/tests/py/mcp_client.py",
    ))
    .args(args);
    for (k, v) in cairn.get_envs() {
        match v {
            Some(v) => py.env(k, v),
            None => py.env_remove(k),
        };
    }
    let out = py.output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

fn check_report(report: &Value, fake: &FakeLlm) {
    assert_eq!(report["server"], "cairn");
    assert_eq!(
        report["tools"],
        json!(["ask_agent", "list_agents", "memory_search"])
    );
    assert_eq!(
        report["schemas"]["ask_agent"]["required"],
        json!(["agent", "message"])
    );
    assert!(
        report["agents"][0].as_str().unwrap().contains("default"),
        "{report}"
    );
    assert_eq!(
        report["answer"],
        json!(["The notes say: buy rope."]),
        "{report}"
    );
    assert_eq!(report["answer_error"], false);
    assert_eq!(report["structured"]["status"], "completed");
    assert!(
        report["structured"]["session"]
            .as_str()
            .unwrap()
            .starts_with("ses_"),
        "{report}"
    );
    let progress: Vec<&str> = report["progress"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        progress.contains(&"calling exec") && progress.contains(&"exec done"),
        "the run's steps arrive as progress notifications: {progress:?}"
    );
    assert_eq!(report["unknown_error"], true);
    assert!(
        report["unknown"][0]
            .as_str()
            .unwrap()
            .contains("no agent named"),
        "{report}"
    );
    assert!(
        report["memory"][0]
            .as_str()
            .unwrap()
            .contains("The staging server is called orion."),
        "memory_search finds the saved fact: {report}"
    );
    assert_eq!(
        report["memory_hits"]["hits"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    let reqs = fake.requests();
    assert!(
        reqs[1].message_texts().iter().any(|t| t.contains("rope")),
        "the agent's tool ran: {:?}",
        reqs[1].message_texts()
    );
}

#[test]
fn the_python_sdk_asks_an_agent_over_stdio() {
    let (h, fake) = prepared();
    let cairn = h.anthropic(&fake);
    let bin = cairn.get_program().to_string_lossy().to_string();
    let report = client(&cairn, &["stdio", &bin]);
    check_report(&report, &fake);
}

#[test]
fn the_python_sdk_asks_an_agent_over_http_with_the_api_key() {
    let (h, fake) = prepared();
    let mut cairn = h.anthropic(&fake);
    cairn.env("CAIRN_SERVER__API_KEY", "mcp-test-key");
    let server = ServerProcess::start(cairn);
    let url = format!("http://127.0.0.1:{}/mcp", server.port());
    let report = client(&h.cmd(), &["http", &url, "mcp-test-key"]);
    check_report(&report, &fake);

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}})
    .to_string();
    let base = format!("http://127.0.0.1:{}", server.port());
    let post = |extra: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream{extra}",
            server.port()
        )
    };
    let (status, body) = raw_request(&base, &post(""), &init);
    assert_eq!(status, 401, "no key, no MCP: {body}");
    let (status, body) = raw_request(
        &base,
        &post("\r\nAuthorization: Bearer mcp-test-key\r\nOrigin: https://evil.example"),
        &init,
    );
    assert_eq!(status, 403, "a web page cannot reach /mcp: {body}");
    let (status, body) = raw_request(
        &base,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: attacker.example:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: Bearer mcp-test-key",
            server.port()
        ),
        &init,
    );
    assert_eq!(status, 403, "a rebinding Host is refused: {body}");
    let (status, body) = raw_request(
        &base,
        &post("\r\nAuthorization: Bearer mcp-test-key"),
        "{not json-rpc",
    );
    assert!(
        (400..500).contains(&status),
        "bad JSON-RPC is a 4xx: {status} {body}"
    );
    let (status, body) = raw_request(
        &base,
        &post("\r\nAuthorization: Bearer mcp-test-key"),
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "ask_agent"}}).to_string(),
    );
    assert!(
        (400..500).contains(&status),
        "a call outside any session is refused: {status} {body}"
    );
    assert_eq!(fake.requests().len(), 2, "none of these reached a model");
}
