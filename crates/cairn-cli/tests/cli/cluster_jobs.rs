//! Tools placed on workers, end to end: an agent's placed tools run on a
//! worker whose labels satisfy the placement (never on the coordinator,
//! never on a worker with other labels); a call no worker can take waits,
//! visible in `cairn cluster jobs`, until one connects.

use std::time::{Duration, Instant};

use cairn_testkit::{CairnHome, FakeLlm, Reply};
use serde_json::{Value, json};

use crate::api::Api;
use crate::cluster::{coordinator_in, join_token, joined_worker};
use crate::*;

/// The default agent sends its file and exec tools to `region=eu` workers,
/// into a named workspace.
pub const PLACED: &str = r#"
[agents.default.placement]
requires = { region = "eu" }
tools = ["write_file", "exec"]
workspace = "docs"
deadline_s = 60
"#;

pub fn ca_sha256(h: &CairnHome) -> String {
    cairn_cluster::CaDir(h.path().join("cluster"))
        .ca_fingerprint()
        .unwrap()
}

pub fn cluster_jobs(h: &CairnHome) -> Vec<Value> {
    let out = ok(h.cmd(), &["cluster", "jobs", "--json"]);
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placed_tools_run_on_a_worker_with_the_labels_and_wait_for_one() {
    let fake = FakeLlm::start();
    let h = home();
    let server = coordinator_in(&h, None, PLACED, h.anthropic(&fake));
    let api = Api::tls(&server, &ca_sha256(&h));

    // A worker with other labels is connected; it must not get the call.
    let us_home = home();
    let us_token = join_token(&h, None, "region=us", "10m");
    let _us = joined_worker(&us_home, &server, &us_token, "us-1");

    fake.push([
        Reply::tool(
            "write_file",
            json!({"path": "hello.txt", "content": "written on the eu worker"}),
        ),
        Reply::tool("exec", json!({"command": "cat hello.txt"})),
        Reply::text("done"),
    ]);
    api.session("s1").await;
    let (status, body) = api
        .post(
            "/api/v1/sessions/s1/messages",
            json!({"content": "write hello.txt, then show it"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["id"].as_str().unwrap().to_string();

    // No eu worker yet: the call waits, visibly.
    let start = Instant::now();
    let waiting = loop {
        let jobs = cluster_jobs(&h);
        if let Some(j) = jobs.iter().find(|j| j["status"] == "ready") {
            break j.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{jobs:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(waiting["tool"], "write_file");
    assert_eq!(waiting["requires"], json!({"region": "eu"}));
    assert!(
        waiting["traceparent"].as_str().unwrap().starts_with("00-"),
        "{waiting}"
    );
    let table = stdout(&ok(h.cmd(), &["cluster", "jobs"]));
    assert!(
        table.contains("ready") && table.contains("region=eu"),
        "{table}"
    );

    let eu_home = home();
    let eu_token = join_token(&h, None, "region=eu,cap=files", "10m");
    let _eu = joined_worker(&eu_home, &server, &eu_token, "eu-1");
    let done = api.wait_run(&run_id, Duration::from_secs(30)).await;
    assert_eq!(done["run"]["status"], "completed", "{done}");

    // The file is in the eu worker's named workspace, nowhere else.
    let on_worker = eu_home
        .path()
        .join("worker-workspaces/named/docs/hello.txt");
    assert_eq!(
        std::fs::read_to_string(&on_worker).ok().as_deref(),
        Some("written on the eu worker"),
        "jobs: {:?}\nmodel saw: {:?}\ncoordinator:\n{}",
        cluster_jobs(&h),
        fake.requests()
            .iter()
            .map(cairn_testkit::RecordedRequest::message_texts)
            .collect::<Vec<_>>(),
        server.log()
    );
    assert!(!h.workspace().join("hello.txt").exists());
    assert!(!us_home.path().join("worker-workspaces").exists());
    // The exec output came back to the model.
    let reqs = fake.requests();
    assert!(
        reqs[2]
            .message_texts()
            .iter()
            .any(|t| t.contains("written on the eu worker")),
        "{:?}",
        reqs[2].message_texts()
    );
    let jobs = cluster_jobs(&h);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let eu_id = crate::cluster::node_id(&eu_home);
    for j in &jobs {
        assert_eq!(j["status"], "done", "{j}");
        assert_eq!(j["node"], eu_id.as_str(), "{j}");
        assert_eq!(j["attempt"], 1, "{j}");
        assert!(j["id"].as_str().unwrap().starts_with(&run_id), "{j}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_no_worker_takes_fails_at_its_deadline_with_a_reason() {
    let fake = FakeLlm::start();
    let h = home();
    let config = PLACED.replace("deadline_s = 60", "deadline_s = 1");
    let server = coordinator_in(&h, None, &config, h.anthropic(&fake));
    let api = Api::tls(&server, &ca_sha256(&h));
    fake.push([
        Reply::tool("exec", json!({"command": "true"})),
        Reply::text("no worker, then"),
    ]);
    api.session("s1").await;
    let done = api.turn("s1", "run true").await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    let reqs = fake.requests();
    assert!(
        reqs[1]
            .message_texts()
            .iter()
            .any(|t| t.contains("no connected worker with the labels")),
        "{:?}",
        reqs[1].message_texts()
    );
    assert_eq!(cluster_jobs(&h)[0]["status"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placed_tools_are_refused_on_a_single_node() {
    let fake = FakeLlm::start();
    let h = home();
    h.write_config(PLACED);
    let server = cairn_testkit::ServerProcess::start(h.anthropic(&fake));
    let api = Api::new(&server);
    fake.push([
        Reply::tool("exec", json!({"command": "touch ran-here"})),
        Reply::text("ok"),
    ]);
    api.session("s1").await;
    let done = api.turn("s1", "touch a file").await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    assert!(!h.workspace().join("ran-here").exists());
    let reqs = fake.requests();
    assert!(
        reqs[1]
            .message_texts()
            .iter()
            .any(|t| t.contains("not a coordinator")),
        "{:?}",
        reqs[1].message_texts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_nothing_without_a_delegation_from_its_cluster() {
    let fake = FakeLlm::start();
    let h = home();
    let server = coordinator_in(&h, None, PLACED, h.anthropic(&fake));
    let api = Api::tls(&server, &ca_sha256(&h));
    let w = home();
    let token = join_token(&h, None, "region=eu", "10m");
    let mut first = joined_worker(&w, &server, &token, "eu-1");
    first.kill9();
    // The worker now trusts another signer: every token fails for it.
    let path = w.path().join("worker").join("node.json");
    let mut identity: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let stranger =
        cairn_cluster::delegation::Delegator::load_or_create(&other.path().join("k")).unwrap();
    identity["delegation_key"] = stranger.public_key().into();
    std::fs::write(&path, identity.to_string()).unwrap();
    let worker = crate::cluster::worker(&w, &[]);
    worker.wait_for("connected to", Duration::from_secs(20));
    fake.push([
        Reply::tool("write_file", json!({"path": "x.txt", "content": "nope"})),
        Reply::text("refused, then"),
    ]);
    api.session("s1").await;
    let done = api.turn("s1", "write x.txt").await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    let told = fake.requests()[1].message_texts().join("\n");
    assert!(
        told.contains("the worker refused this call: delegation"),
        "{told}"
    );
    assert!(!w.path().join("worker-workspaces/named/docs/x.txt").exists());
    assert!(
        worker.log().contains("delegation token does not hold"),
        "{}",
        worker.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_calls_follow_its_workspace_to_one_worker_until_that_worker_is_lost() {
    let fake = FakeLlm::start();
    let h = home();
    let server = coordinator_in(&h, None, PLACED, h.anthropic(&fake));
    let api = Api::tls(&server, &ca_sha256(&h));
    let mut workers = Vec::new();
    for name in ["eu-a", "eu-b"] {
        let w = home();
        let token = join_token(&h, None, "region=eu", "10m");
        let p = joined_worker(&w, &server, &token, name);
        workers.push((w, p));
    }
    // Each call finds the files of the calls before it, wherever it lands.
    let mut script = Vec::new();
    for i in 0..4 {
        script.push(Reply::tool(
            "write_file",
            json!({"path": format!("n{i}.txt"), "content": format!("note {i};")}),
        ));
        script.push(Reply::tool("exec", json!({"command": "cat n*.txt"})));
    }
    // Then the workspace's node is lost before the next call.
    let gate = h.path().join("node-lost");
    script.push(Reply::AfterFile(
        gate.clone(),
        Box::new(Reply::tool("exec", json!({"command": "ls"}))),
    ));
    script.push(Reply::text("done"));
    fake.push(script);
    api.session("s1").await;
    let (status, body) = api
        .post(
            "/api/v1/sessions/s1/messages",
            json!({"content": "take notes"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["id"].as_str().unwrap().to_string();
    wait_until("the ninth model call", Duration::from_secs(60), || {
        fake.requests().len() >= 9
    });
    let reqs = fake.requests();
    let told = reqs[8].message_texts().join("\n");
    assert!(
        told.contains("note 0;note 1;note 2;note 3;"),
        "every call saw the files before it: {told}"
    );
    let jobs = cluster_jobs(&h);
    let home_node = jobs[0]["node"].as_str().unwrap().to_string();
    assert!(
        jobs.iter().all(|j| j["node"] == home_node.as_str()),
        "one worker: {jobs:?}"
    );

    let lost = workers
        .iter()
        .position(|(w, _)| crate::cluster::node_id(w) == home_node)
        .unwrap();
    workers[lost].1.kill9();
    wait_until("the node seen down", Duration::from_secs(30), || {
        crate::cluster::nodes(&h, None)
            .iter()
            .any(|n| n["id"] == home_node.as_str() && n["coordinator"].is_null())
    });
    std::fs::write(&gate, "").unwrap();
    let done = api.wait_run(&run_id, Duration::from_secs(30)).await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    let last = cluster_jobs(&h)
        .into_iter()
        .find(|j| j["input"]["command"] == "ls")
        .unwrap();
    let other = crate::cluster::node_id(&workers[1 - lost].0);
    assert_eq!(last["node"], other.as_str(), "{last}");
    assert_eq!(last["status"], "done", "{last}");
    assert!(
        server
            .log()
            .contains("the node holding this run's workspace is down"),
        "{}",
        server.log()
    );
}
