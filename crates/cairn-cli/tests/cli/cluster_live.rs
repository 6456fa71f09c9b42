//! A worker's command seen and steered from the run: its output streams to
//! the run's watchers while it runs, and cancelling the run stops it on
//! the worker (the job is final as `cancelled`, its late result refused),
//! and through any coordinator, not only the one driving the run.

use std::time::Duration;

use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

use crate::api::Api;
use crate::cluster::{coordinator_in, join_token, joined_worker};
use crate::cluster_jobs::{PLACED, ca_sha256, cluster_jobs};
use crate::server_api::run_watched_command;
use crate::*;

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
    api.session("s1").await;
    let told = run_watched_command(&api, &fake, "s1", &docs.join("go")).await;
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
        docs.join("started").exists() && !processes_with(&marker).is_empty()
    });
    let (status, body) = api
        .post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert!(status < 300, "{status} {body}");
    let done = api.wait_run(&run_id, Duration::from_secs(30)).await;
    assert_eq!(done["run"]["status"], "cancelled", "{done}");
    wait_until("the command killed", Duration::from_secs(30), || {
        processes_with(&marker).is_empty()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_cancelled_through_any_coordinator() {
    let db = cairn_testkit::TestDatabase::create().await;
    let fake = FakeLlm::start();
    // Renewed every second: the request is seen within one.
    let lease = "[server]\nlease_ms = 3000\n";
    let a_home = home();
    let a = coordinator_in(&a_home, Some(db.url()), lease, a_home.anthropic(&fake));
    let b_home = home();
    crate::cluster::copy_dir(
        &a_home.path().join("cluster"),
        &b_home.path().join("cluster"),
    );
    let b = coordinator_in(&b_home, Some(db.url()), lease, b_home.anthropic(&fake));
    fake.push([Reply::Delayed(
        Duration::from_secs(60),
        Box::new(Reply::text("too late")),
    )]);
    let api_a = Api::tls(&a, &ca_sha256(&a_home));
    api_a.session("s1").await;
    let (status, body) = api_a
        .post(
            "/api/v1/sessions/s1/messages",
            json!({"content": "think long"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["id"].as_str().unwrap().to_string();
    wait_until("A's model call", Duration::from_secs(20), || {
        fake.requests().len() == 1
    });

    let api_b = Api::tls(&b, &ca_sha256(&b_home));
    let (status, body) = api_b
        .post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    let done = api_b.wait_run(&run_id, Duration::from_secs(30)).await;
    assert_eq!(done["run"]["status"], "cancelled", "{done}");
    // A drove it to the end: B only asked.
    assert!(
        done["run"]["error"]
            .as_str()
            .unwrap()
            .contains("cancelled during a model call"),
        "{done}"
    );
    assert_eq!(fake.requests().len(), 1, "{}", a.log());
    let (status, body) = api_b
        .post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 409, "a finished run is not cancelled again: {body}");
}
