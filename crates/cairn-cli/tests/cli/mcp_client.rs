//! cairn's MCP client against the reference MCP servers from npm and a
//! server that misbehaves on purpose, through `cairn run` with the fake LLM.

use cairn_testkit::{CairnHome, FakeLlm, Reply, mcp_reference_server, node, repo_path};
use serde_json::{Value, json};

use crate::*;

/// The directories the test servers live in. The clone may be under /tmp
/// or a home, which the sandbox hides: the servers are given them to read.
pub fn server_dirs() -> String {
    let peers = repo_path("scripts/mcp-peers");
    let py = repo_path("crates/cairn-cli/tests/py");
    format!("read_paths = [{peers:?}, {py:?}]")
}

/// `[mcp.servers.<name>]` for a stdio command, given to agent `default`.
fn stdio_server(h: &CairnHome, name: &str, command: &str, args: &[String], extra: &str) {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    h.write_config(&format!(
        "[mcp.servers.{name}]\ncommand = {command:?}\nargs = [{}]\n{}\n{extra}\n\n[agents.default]\nmcp = [\"{name}\"]\n",
        args.join(", "),
        server_dirs()
    ));
}

/// The tool specs the model was offered in its first request.
fn offered_tools(fake: &FakeLlm) -> Vec<Value> {
    fake.requests()[0].body["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_filesystem_server_lists_reads_and_writes_inside_its_root_only() {
    let h = home();
    let fake = FakeLlm::start();
    let ws = h.workspace();
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("seed.txt"), "planted by the test").unwrap();
    let root = ws.display().to_string();
    let server = mcp_reference_server("server-filesystem");
    stdio_server(
        &h,
        "fs",
        &node(),
        &[server.display().to_string(), root.clone()],
        "",
    );
    let results = call_tools(
        h.anthropic(&fake),
        &fake,
        &[
            (
                "fs__write_file",
                json!({"path": format!("{root}/notes.txt"), "content": "written over MCP"}),
            ),
            (
                "fs__read_text_file",
                json!({"path": format!("{root}/seed.txt")}),
            ),
            ("fs__list_directory", json!({"path": root})),
            ("fs__read_text_file", json!({"path": "/etc/hostname"})),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("notes.txt")).unwrap(),
        "written over MCP"
    );
    assert!(results[1].contains("planted by the test"), "{}", results[1]);
    assert!(
        results[2].contains("notes.txt") && results[2].contains("seed.txt"),
        "{}",
        results[2]
    );
    assert!(
        results[3].contains("denied") || results[3].contains("outside"),
        "a path outside the root is refused: {}",
        results[3]
    );
    let tools = offered_tools(&fake);
    let read = tools
        .iter()
        .find(|t| t["name"] == "fs__read_text_file")
        .unwrap_or_else(|| panic!("fs__read_text_file offered: {tools:?}"));
    assert_eq!(read["input_schema"]["type"], "object");
    assert!(
        read["input_schema"]["properties"]["path"].is_object(),
        "{read}"
    );
    assert!(
        tools.iter().any(|t| t["name"] == "exec"),
        "built-in tools stay: {tools:?}"
    );
}

#[test]
fn the_everything_server_passes_schemas_progress_resources_prompts_and_errors() {
    let h = home();
    let fake = FakeLlm::start();
    let server = mcp_reference_server("server-everything");
    stdio_server(
        &h,
        "ev",
        &node(),
        &[server.display().to_string(), "stdio".into()],
        "env = { DECLARED_FOR_THE_SERVER = \"yes\" }",
    );
    fake.push([
        Reply::tool("ev__get-sum", json!({"a": 2, "b": 40})),
        Reply::tool(
            "ev__trigger-long-running-operation",
            json!({"duration": 2, "steps": 4}),
        ),
        Reply::tool("ev__get-sum", json!({"a": "two"})),
        Reply::tool("ev__list_resources", json!({})),
        Reply::tool(
            "ev__read_resource",
            json!({"uri": "demo://resource/static/document/features.md"}),
        ),
        Reply::tool(
            "ev__get_prompt",
            json!({"name": "args-prompt", "arguments": {"city": "Lyon", "state": "Rhône"}}),
        ),
        Reply::tool("ev__get-env", json!({})),
        Reply::text("done"),
    ]);
    let mut cmd = h.anthropic(&fake);
    cmd.env("SERVER_SIDE_SECRET", "never-in-the-sandbox");
    let out = ok(cmd, &["run", "--no-stream", "try the tools"]);
    let reqs = fake.requests();
    let result = |i: usize| reqs[i].message_texts().last().cloned().unwrap_or_default();
    assert!(result(1).contains("42"), "{}", result(1));
    assert!(result(2).contains("completed"), "{}", result(2));
    let said = stderr(&out);
    let at = |s: &str| said.find(s).unwrap_or(usize::MAX);
    assert!(
        at("progress 1/4") < at("progress 4/4")
            && at("progress 4/4") < at("← ev__trigger-long-running-operation"),
        "every progress notification streams, in order, before the tool's result: {said}"
    );
    let bad_args = &reqs[3].body["messages"];
    assert!(
        bad_args.to_string().contains("\"is_error\":true"),
        "a tool that fails is an error result: {bad_args}"
    );
    assert!(result(4).contains("features.md"), "{}", result(4));
    assert!(result(5).contains("[resource demo://"), "{}", result(5));
    assert!(result(6).contains("Lyon"), "{}", result(6));
    let env = result(7);
    assert!(
        env.contains("DECLARED_FOR_THE_SERVER")
            && !env.contains("never-in-the-sandbox")
            && !env.contains("sk-ant-test"),
        "a stdio server sees the allowlist and its own env, not the server's secrets: {env}"
    );
    assert!(
        env.contains(&format!("\"HOME\": \"{}\"", h.workspace().display())),
        "its home is the agent's workspace: {env}"
    );
    let tools = offered_tools(&fake);
    let resource_ref = tools
        .iter()
        .find(|t| t["name"] == "ev__get-resource-reference")
        .unwrap();
    assert_eq!(
        resource_ref["input_schema"]["properties"]["resourceType"]["enum"],
        json!(["Text", "Blob"]),
        "schemas reach the model as the server wrote them"
    );
}

/// The server that misbehaves on purpose (run by the system Python: the
/// sandbox hides home directories, where a venv would be).
pub fn bad_mcp() -> String {
    repo_path("crates/cairn-cli/tests/py/bad_mcp.py")
        .display()
        .to_string()
}

/// `bad_mcp.py` as server `bad` of agent `default`, with `extra` config;
/// returns the tag on its command line that finds its processes.
fn bad_server(h: &CairnHome, extra: &str) -> String {
    let tag = format!("tag-{}", h.path().display());
    stdio_server(
        h,
        "bad",
        "/usr/bin/python3",
        &[bad_mcp(), tag.clone()],
        extra,
    );
    tag
}

#[test]
fn a_server_that_crashes_hangs_garbles_or_floods_gives_clear_errors_and_the_run_goes_on() {
    let h = home();
    let fake = FakeLlm::start();
    let tag = bad_server(&h, "timeout_s = 3");
    let results = call_tools(
        h.anthropic(&fake),
        &fake,
        &[
            ("bad__boot", json!({})),
            ("bad__crash", json!({})),
            ("bad__boot", json!({})),
            ("bad__hang", json!({})),
            ("bad__echo", json!({"text": "after the hang"})),
            ("bad__garbage", json!({})),
            ("bad__big", json!({})),
            ("bad__echo", json!({"text": "still here"})),
        ],
    );
    let first_boot = &results[0];
    assert!(
        results[1].contains("stopped during the call")
            && results[1].contains("crashing on purpose"),
        "{}",
        results[1]
    );
    assert!(
        results[2].len() == 12 && results[2] != *first_boot,
        "restarted after the crash: {} then {}",
        first_boot,
        results[2]
    );
    assert!(
        results[3].contains("did not answer hang within 3 s"),
        "{}",
        results[3]
    );
    assert_eq!(results[4], "echo: after the hang");
    assert!(
        results[5].contains("did not answer garbage"),
        "{}",
        results[5]
    );
    assert!(
        results[6].contains("bytes omitted of 20000000") && results[6].len() < 64 * 1024,
        "a 20 MB result is capped: {} bytes",
        results[6].len()
    );
    assert_eq!(results[7], "echo: still here");
    let runs = json(&h, &["runs", "list"]);
    assert_eq!(runs[0]["status"], "completed");
    wait_until(
        "no server process is left",
        std::time::Duration::from_secs(10),
        || processes_with(&tag).is_empty(),
    );
}

#[test]
fn a_server_that_cannot_start_leaves_the_run_with_its_other_tools() {
    let h = home();
    let fake = FakeLlm::start();
    stdio_server(&h, "gone", "/nonexistent/mcp-server", &[], "");
    fake.push([
        Reply::tool("exec", json!({"command": "echo still works"})),
        Reply::text("ok"),
    ]);
    let out = ok(h.anthropic(&fake), &["run", "--no-stream", "hello"]);
    assert!(stdout(&out).contains("ok"), "{}", describe(&out));
    let reqs = fake.requests();
    assert!(
        reqs[1]
            .message_texts()
            .last()
            .unwrap()
            .contains("still works"),
        "{:?}",
        reqs[1].message_texts()
    );
    assert!(
        stderr(&out).contains("MCP server gone could not be started"),
        "the operator is told: {}",
        stderr(&out)
    );
}

#[test]
fn mcp_config_mistakes_are_refused_with_file_and_line() {
    let h = home();
    h.write_config("[agents.default]\nmcp = [\"nope\"]\n");
    let out = run(h.cmd(), &["run", "hi"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cairn.toml:2") && stderr(&out).contains("\"nope\""),
        "{}",
        stderr(&out)
    );
    h.write_config("[mcp.servers.x]\nargs = [\"a\"]\n");
    let out = run(h.cmd(), &["run", "hi"]);
    assert!(
        stderr(&out).contains("cairn.toml:1") && stderr(&out).contains("either command"),
        "{}",
        stderr(&out)
    );
    h.write_config("[mcp.servers.x]\nurl = \"http://127.0.0.1:1/mcp\"\nheaders = { \"X-A\" = \"a\\r\\nInjected: 1\" }\n");
    let out = run(h.cmd(), &["run", "hi"]);
    assert!(
        !out.status.success() && stderr(&out).contains("not a valid HTTP header"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tool_list_reaches_the_next_turn_and_metrics_report_the_server() {
    let h = home();
    let fake = FakeLlm::start();
    bad_server(&h, "timeout_s = 3");
    let server = crate::api::start(&h, &fake);
    let api = crate::api::Api::new(&server);
    api.session("s").await;
    fake.push([Reply::tool("bad__grow", json!({})), Reply::text("grown")]);
    let run = api.turn("s", "grow").await;
    assert_eq!(run["run"]["status"], "completed", "{run}");
    let offered = |i: usize| -> Vec<String> {
        fake.requests()[i].body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!offered(0).contains(&"bad__extra".to_string()));
    fake.push([Reply::tool("bad__crash", json!({})), Reply::text("ok")]);
    let run = api.turn("s", "again").await;
    assert_eq!(run["run"]["status"], "completed", "{run}");
    assert!(
        offered(2).contains(&"bad__extra".to_string()),
        "the tool the server added is offered: {:?}",
        offered(2)
    );
    let metrics = api.raw(reqwest::Method::GET, "/metrics", vec![]).await.1;
    assert!(
        metrics.contains("cairn_mcp_server_restarts_total{agent=\"default\",server=\"bad\"} 1"),
        "the crash is reported: {metrics}"
    );
    assert!(
        metrics.contains("cairn_mcp_server_tools{agent=\"default\",server=\"bad\"} 8"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_mid_call_leaves_no_mcp_process_behind() {
    let h = home();
    let fake = FakeLlm::start();
    let tag = bad_server(&h, "timeout_s = 120");
    let mut server = crate::api::start(&h, &fake);
    let api = crate::api::Api::new(&server);
    api.session("s").await;
    fake.push([Reply::tool("bad__hang", json!({}))]);
    let (status, _) = api
        .post("/api/v1/sessions/s/messages", json!({"content": "hang"}))
        .await;
    assert_eq!(status, 202);
    wait_until(
        "the MCP server is running",
        std::time::Duration::from_secs(20),
        || !processes_with(&tag).is_empty() && fake.requests().len() == 1,
    );
    server.kill9();
    wait_until(
        "the MCP server died with cairn",
        std::time::Duration::from_secs(10),
        || processes_with(&tag).is_empty(),
    );
}

#[test]
fn cairn_serve_starts_mcp_servers_at_start_and_reports_one_that_fails() {
    let h = home();
    let fake = FakeLlm::start();
    stdio_server(&h, "gone", "/nonexistent/mcp-server", &[], "");
    let server = crate::api::start(&h, &fake);
    wait_until(
        "the failure is reported without any run",
        std::time::Duration::from_secs(20),
        || {
            server
                .log()
                .contains("MCP server gone could not be started")
        },
    );
    assert!(fake.requests().is_empty());
}
