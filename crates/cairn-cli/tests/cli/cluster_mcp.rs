//! An MCP server pinned to a node label: the coordinator never starts it;
//! the worker with the labels runs it from its own config (the data stays
//! on that host), and the agent calls its tools as cluster jobs.

use std::time::Duration;

use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

use crate::api::Api;
use crate::cluster::{coordinator_in, join_token, joined_worker};
use crate::cluster_jobs::{ca_sha256, cluster_jobs};
use crate::*;

const PINNED: &str = "
[mcp.servers.edge]
node = { region = \"eu\" }
timeout_s = 20

[agents.default]
mcp = [\"edge\"]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_mcp_server_runs_on_the_worker_with_its_labels() {
    let fake = FakeLlm::start();
    let h = home();
    let server = coordinator_in(&h, None, PINNED, h.anthropic(&fake));
    let api = Api::tls(&server, &ca_sha256(&h));

    // Before any worker: the run goes on without the edge's tools, and
    // without waiting for a worker that is not there.
    api.session("s").await;
    fake.push([Reply::text("no edge yet")]);
    let first = api.turn("s", "anything from the edge?").await;
    assert_eq!(first["run"]["status"], "completed", "{first}");
    assert!(
        server
            .log()
            .contains("no worker with labels region=eu is connected"),
        "{}",
        server.log()
    );
    let offered = |i: usize| fake.requests()[i].body["tools"].to_string();
    assert!(!offered(0).contains("edge__echo"), "{}", offered(0));

    let w = home();
    let script = crate::mcp_client::bad_mcp();
    w.write_config(&format!(
        "[mcp.servers.edge]\ncommand = \"/usr/bin/python3\"\nargs = [{script:?}, \"edge-worker\"]\n{}\n",
        crate::mcp_client::server_dirs()
    ));
    let token = join_token(&h, None, "region=eu", "10m");
    let worker = joined_worker(&w, &server, &token, "eu-edge");
    assert!(
        worker
            .log()
            .contains("MCP servers offered to the cluster: edge"),
        "{}",
        worker.log()
    );

    fake.push([
        Reply::tool("edge__echo", json!({"text": "customer 42"})),
        Reply::text("done"),
    ]);
    let run = api.turn("s", "ask the edge").await;
    assert_eq!(run["run"]["status"], "completed", "{run}");
    let reqs = fake.requests();
    assert!(offered(1).contains("edge__echo"), "{}", offered(1));
    assert!(
        offered(1).contains("[MCP server edge] the echo tool"),
        "the worker's description and schema reach the model: {}",
        offered(1)
    );
    assert_eq!(
        reqs[2].message_texts().last().unwrap(),
        "echo: customer 42",
        "{:?}",
        reqs[2].message_texts()
    );
    let jobs = cluster_jobs(&h);
    let call = jobs
        .iter()
        .find(|j| j["tool"] == "edge__echo")
        .unwrap_or_else(|| panic!("{jobs:?}"));
    assert_eq!(call["status"], "done", "{call}");
    assert_eq!(call["node"], crate::cluster::node_id(&w), "{call}");
    assert!(
        jobs.iter().any(|j| j["tool"] == "mcp.list"),
        "the tools were listed by the worker: {jobs:?}"
    );
    wait_until("worker still connected", Duration::from_secs(1), || {
        worker.log().contains("connected to")
    });
}
