//! A worker's command seen and steered from the run: its output streams to
//! the run's watchers while it runs, and cancelling the run stops it on
//! the worker (the job is final as `cancelled`, its late result refused).

use std::time::Duration;

use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

use crate::api::Api;
use crate::cluster::{coordinator_in, join_token, joined_worker};
use crate::cluster_jobs::{PLACED, ca_sha256, cluster_jobs};
use crate::server_api::{WAITS_FOR_ITS_WATCHER, streamed_output};
use crate::*;

/// Whether any process's command line contains `marker`.
fn running(marker: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(marker)
            })
            .unwrap_or(false)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_command_streams_its_output_and_stops_when_the_run_is_cancelled() {
    let fake = FakeLlm::start();
    let h = home();
    let server = coordinator_in(&h, None, PLACED, h.anthropic(&fake));
    let api = Api::tls(&server, &ca_sha256(&h));
    let w = home();
    let token = join_token(&h, None, "region=eu", "10m");
    let worker = joined_worker(&w, &server, &token, "eu-1");
    let docs = w.path().join("worker-workspaces/named/docs");

    // Streams: the command goes on only once the watcher saw its first line.
    fake.push([
        Reply::tool("exec", json!({"command": WAITS_FOR_ITS_WATCHER})),
        Reply::text("done"),
    ]);
    api.session("s1").await;
    let go = docs.join("go");
    let events = api
        .post_sse_live("s1", "run it on the worker", |kind, data| {
            if kind == "tool_output" && data["chunk"].as_str().unwrap().contains("first-line") {
                std::fs::write(&go, "").unwrap();
            }
        })
        .await;
    let (streamed, in_order) = streamed_output(&events);
    assert!(in_order, "{events:?}");
    assert!(
        streamed.contains("first-line") && streamed.contains("second-line"),
        "{streamed:?}"
    );
    let told = fake.requests()[1].message_texts().join("\n");
    assert!(told.contains("exit code: 0"), "{told}");

    // Cancelled: the command dies on the worker and its effect never comes.
    let marker = format!("sleep 3{}", std::process::id());
    fake.push([
        Reply::tool(
            "exec",
            json!({"command": format!("touch started; {marker}; echo late >> effects.txt")}),
        ),
        Reply::text("never asked"),
    ]);
    let (status, body) = api
        .post(
            "/api/v1/sessions/s1/messages",
            json!({"content": "run the long one"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["id"].as_str().unwrap().to_string();
    wait_until("the command on the worker", Duration::from_secs(30), || {
        docs.join("started").exists() && running(&marker)
    });
    let (status, body) = api
        .post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert!(status < 300, "{status} {body}");
    let done = api.wait_run(&run_id, Duration::from_secs(30)).await;
    assert_eq!(done["run"]["status"], "cancelled", "{done}");
    wait_until("the command killed", Duration::from_secs(30), || {
        !running(&marker)
    });
    let job = cluster_jobs(&h)
        .into_iter()
        .find(|j| j["id"].as_str().unwrap().starts_with(&run_id))
        .unwrap();
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(!docs.join("effects.txt").exists(), "the effect never came");
    assert_eq!(fake.requests().len(), 3, "the model was not asked again");
    assert!(worker.log().contains("connected to"), "{}", worker.log());
}
