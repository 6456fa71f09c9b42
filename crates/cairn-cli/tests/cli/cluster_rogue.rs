//! A worker answers only for its own jobs: another node with a valid
//! certificate of the same cluster sends `done` for a job leased elsewhere
//! (job ids are guessable: `<run>/<seq>`); it is refused, and the run gets
//! the real worker's result.

use std::time::{Duration, Instant};

use cairn_core::ToolOutput;
use cairn_core::cluster::{CoordinatorMessage, Labels, WorkerMessage};
use cairn_testkit::{FakeLlm, Reply};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::api::Api;
use crate::cluster::{coordinator_in, join_token, joined_worker};
use crate::cluster_jobs::{PLACED, ca_sha256, cluster_jobs};
use crate::*;

/// A connection to the coordinator's worker endpoint with `home`'s node
/// certificate, as a hand-written worker would make.
async fn connect_as(
    home: &cairn_testkit::CairnHome,
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = cairn_cluster::tls::node_client_config(&home.path().join("worker")).unwrap();
    let authority = url.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let host = authority.rsplit_once(':').unwrap().0.to_string();
    let name = rustls::pki_types::ServerName::try_from(host).unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let ws_url = format!("wss://{authority}/cluster/v1/connect");
    tokio_tungstenite::client_async(ws_url, stream)
        .await
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cannot_finish_a_job_leased_to_another() {
    let fake = FakeLlm::start();
    let h = home();
    let server = coordinator_in(&h, None, PLACED, h.anthropic(&fake));
    let api = Api::tls(&server, &ca_sha256(&h));
    let eu_home = home();
    let token = join_token(&h, None, "region=eu", "10m");
    let _eu = joined_worker(&eu_home, &server, &token, "eu-1");
    // The rogue joins properly (it has a certificate), then stops its own
    // worker and speaks the protocol by hand.
    let rogue_home = home();
    let token = join_token(&h, None, "region=us", "10m");
    let mut rogue_worker = joined_worker(&rogue_home, &server, &token, "us-1");
    rogue_worker.kill9();

    fake.push([
        Reply::tool("exec", json!({"command": "sleep 3; echo real-output"})),
        Reply::text("done"),
    ]);
    api.session("s1").await;
    let (status, body) = api
        .post("/api/v1/sessions/s1/messages", json!({"content": "run it"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let leased = loop {
        let jobs = cluster_jobs(&h);
        if let Some(j) = jobs.iter().find(|j| j["status"] == "leased") {
            break j.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{jobs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let job = leased["id"].as_str().unwrap().to_string();
    let attempt = leased["attempt"].as_i64().unwrap();

    let mut ws = connect_as(&rogue_home, &server.url).await;
    let send = |m: &WorkerMessage| Frame::text(serde_json::to_string(m).unwrap());
    ws.send(send(&WorkerMessage::Hello {
        labels: Labels::parse("region=us").unwrap(),
        slots: 1,
        version: "0".into(),
    }))
    .await
    .unwrap();
    // Renewing it would take it over; finishing it would forge the answer.
    ws.send(send(&WorkerMessage::Heartbeat {
        running: vec![cairn_core::cluster::JobRef {
            job: job.clone(),
            attempt,
        }],
    }))
    .await
    .unwrap();
    ws.send(send(&WorkerMessage::Done {
        job: job.clone(),
        attempt,
        output: ToolOutput::ok("FORGED by another node"),
    }))
    .await
    .unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(frame)) = ws.next().await {
            let Frame::Text(t) = frame else { continue };
            if let Ok(CoordinatorMessage::Ack {
                job: j, accepted, ..
            }) = serde_json::from_str(&t)
                && j == job
            {
                return accepted;
            }
        }
        panic!("the connection ended without an answer:\n{}", server.log());
    })
    .await
    .unwrap();
    assert!(!ack, "the forged result was accepted");

    let done = api.wait_run(&run_id, Duration::from_secs(30)).await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    let seen = fake.requests()[1].message_texts().join("\n");
    assert!(seen.contains("real-output"), "{seen}");
    assert!(!seen.contains("FORGED"), "{seen}");
    let eu_id = crate::cluster::node_id(&eu_home);
    let jobs = cluster_jobs(&h);
    assert!(
        jobs.iter()
            .all(|j| j["node"] == eu_id.as_str() && j["status"] == "done"),
        "{jobs:?}"
    );
}
