//! cairn's MCP client over streamable HTTP: against the reference server
//! in its HTTP mode, and against another cairn's `/mcp` with an API key —
//! the edge callback, where a cloud-reasoning agent asks an edge node for
//! data that may not leave, and the router keeps the answer local.

use std::time::Duration;

use cairn_testkit::{FakeLlm, LoggedProcess, Reply, ServerProcess, mcp_reference_server, node};
use serde_json::json;

use crate::router::{cloud_saw_no_canary, hybrid_config, routes};
use crate::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_everything_server_over_http_answers_and_streams_progress() {
    let port = free_port();
    let mut server = std::process::Command::new(node());
    server
        .arg(mcp_reference_server("server-everything"))
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    let server = LoggedProcess::spawn(server);
    server.wait_for("listening on port", Duration::from_secs(30));

    let h = home();
    let fake = FakeLlm::start();
    h.write_config(&format!(
        "[mcp.servers.ev]\nurl = \"http://127.0.0.1:{port}/mcp\"\n\n[agents.default]\nmcp = [\"ev\"]\n"
    ));
    fake.push([
        Reply::tool("ev__get-sum", json!({"a": 20, "b": 22})),
        Reply::tool(
            "ev__trigger-long-running-operation",
            json!({"duration": 1, "steps": 2}),
        ),
        Reply::text("done"),
    ]);
    let out = ok(h.anthropic(&fake), &["run", "--no-stream", "add"]);
    let reqs = fake.requests();
    assert!(
        reqs[1].message_texts().last().unwrap().contains("42"),
        "{:?}\n{}\nserver: {}",
        reqs[1].message_texts(),
        stderr(&out),
        server.log()
    );
    assert!(
        stderr(&out).contains("progress 2/2"),
        "progress arrives over HTTP too: {}",
        stderr(&out)
    );
}

#[test]
fn a_cloud_agent_asks_an_edge_node_and_the_answer_stays_local() {
    // The edge: its own cairn, its own (local) model, the customer file.
    let edge_home = home();
    let edge_llm = FakeLlm::start();
    std::fs::create_dir_all(edge_home.workspace()).unwrap();
    std::fs::write(
        edge_home.workspace().join("customers.txt"),
        "Ada Lovelace, employee EMP-424242, Lyon",
    )
    .unwrap();
    edge_llm.push([
        Reply::tool("exec", json!({"command": "cat customers.txt"})),
        Reply::text("Ada Lovelace is EMP-424242 and works in Lyon."),
    ]);
    let mut edge_cmd = edge_home.anthropic(&edge_llm);
    edge_cmd.env("CAIRN_SERVER__API_KEY", "edge-key");
    let edge = ServerProcess::start(edge_cmd);
    let edge_url = format!("http://127.0.0.1:{}/mcp", edge.port());

    // The cloud side: reasoning on the cloud model, the edge as an MCP
    // server whose results are restricted.
    let h = home();
    let cloud = FakeLlm::start();
    let local = FakeLlm::start();
    let mcp = |key: &str| {
        format!(
            "\n[mcp.servers.edge]\nurl = \"{edge_url}\"\nheaders = {{ Authorization = \"Bearer {key}\" }}\nrestricted = true\n\n[agents.default]\nmcp = [\"edge\"]\n"
        )
    };
    h.write_config(&(hybrid_config(&cloud, &local, "restricted = \"route\"") + &mcp("edge-key")));
    cloud.push([Reply::tool(
        "edge__ask_agent",
        json!({"agent": "default", "message": "Who is Ada and where does she work?"}),
    )]);
    local.push([Reply::text("Ada works in Lyon.")]);
    let out = ok(
        crate::router::cmd(&h),
        &["run", "--no-stream", "--json", "where is Ada?"],
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "completed", "{}", describe(&out));
    assert_eq!(run["output"], "Ada works in Lyon.");
    cloud_saw_no_canary(&cloud);
    assert!(
        local.requests()[0].body.to_string().contains("EMP-424242"),
        "the local model read the edge's answer"
    );
    let decided = routes(&h, run["id"].as_str().unwrap());
    assert_eq!(decided[0]["provider"], "claude", "{decided:?}");
    assert_eq!(decided[1]["provider"], "local", "{decided:?}");
    assert!(
        decided[1]["labels"]
            .to_string()
            .contains("tool:edge__ask_agent"),
        "the edge's result is labelled by its source: {decided:?}"
    );

    // A wrong key: the edge refuses, the agent runs without its tools.
    h.write_config(&(hybrid_config(&cloud, &local, "restricted = \"route\"") + &mcp("wrong")));
    cloud.push([Reply::text("I cannot reach the edge.")]);
    let out = ok(
        crate::router::cmd(&h),
        &["run", "--no-stream", "where is Ada?"],
    );
    assert!(
        stderr(&out).contains("MCP server edge could not be started"),
        "{}",
        stderr(&out)
    );
    assert_eq!(edge_llm.requests().len(), 2, "the edge ran one turn only");
}
