//! A worker cut off from its coordinator mid-call and back: by a dead link
//! (a relay that stops passing bytes both ways, without a FIN or RST, and
//! takes new connections without answering them) and by a frozen process
//! (SIGSTOP). Either way the call's lease runs out, the model is told the
//! outcome is unknown, and the worker's result, sent when it is back, is
//! refused by the attempt fence: no duplicate, no second effect.

use std::time::{Duration, Instant};

use cairn_testkit::{CairnHome, FakeLlm, Link, LoggedProcess, Reply, ServerProcess};
use serde_json::json;

use crate::api::Api;
use crate::cluster::{coordinator_in, join_token, worker};
use crate::cluster_faults::job_of;
use crate::cluster_jobs::{PLACED, ca_sha256};
use crate::*;

/// How the worker is cut off, and brought back.
trait CutOff {
    fn cut(&self, worker: &LoggedProcess);
    fn restore(&self, worker: &LoggedProcess);
}

/// The link between worker and coordinator goes dead.
struct DeadLink(Link);

impl CutOff for DeadLink {
    fn cut(&self, _: &LoggedProcess) {
        self.0.cut();
    }
    fn restore(&self, _: &LoggedProcess) {
        self.0.restore();
    }
}

/// The worker process is frozen; its command keeps running meanwhile.
struct Frozen;

impl CutOff for Frozen {
    fn cut(&self, worker: &LoggedProcess) {
        signal(worker.pid(), "-STOP");
    }
    fn restore(&self, worker: &LoggedProcess) {
        signal(worker.pid(), "-CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The coordinator's address as `host:port`.
fn socket_of(server: &ServerProcess) -> std::net::SocketAddr {
    server
        .url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

async fn cut_off_mid_call(
    h: &CairnHome,
    server: &ServerProcess,
    fake: &FakeLlm,
    dial: &str,
    how: &dyn CutOff,
) {
    let api = Api::tls(server, &ca_sha256(h));
    let w = home();
    let token = join_token(h, None, "region=eu", "10m");
    let worker = worker(&w, &["--join", dial, "--token", &token, "--name", "eu-1"]);
    worker.wait_for("connected to", Duration::from_secs(20));
    fake.push([
        Reply::tool(
            "exec",
            json!({"command": "touch started; sleep 2; echo once >> effects.txt; echo finished"}),
        ),
        Reply::text("ok"),
    ]);
    api.session("s1").await;
    let (status, body) = api
        .post("/api/v1/sessions/s1/messages", json!({"content": "go"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["id"].as_str().unwrap().to_string();
    let docs = w.path().join("worker-workspaces/named/docs");
    wait_until("the command on the worker", Duration::from_secs(20), || {
        docs.join("started").exists()
    });
    how.cut(&worker);
    let done = api.wait_run(&run_id, Duration::from_secs(30)).await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    let told = fake.requests()[1].message_texts().join("\n");
    assert!(told.contains("outcome unknown"), "{told}");
    assert_eq!(job_of(h, "exec").unwrap()["status"], "unknown");

    // Back again: it reconnects and sends its result, which is refused.
    how.restore(&worker);
    let start = Instant::now();
    while !server.log().contains("late result rejected") {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no refusal of the late result:\n{}\nworker:\n{}",
            server.log(),
            worker.log(),
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let job = job_of(h, "exec").unwrap();
    assert_eq!(job["status"], "unknown", "{job}");
    assert_eq!(job["attempt"], 1, "{job}");
    let effects = docs.join("effects.txt");
    assert_eq!(std::fs::read_to_string(effects).unwrap(), "once\n");
    assert_eq!(fake.requests().len(), 2, "the model heard nothing more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_behind_a_dead_link_comes_back_and_its_late_result_is_fenced() {
    let fake = FakeLlm::start();
    let h = home();
    let server = coordinator_in(&h, None, PLACED, h.anthropic(&fake));
    let link = Link::to(socket_of(&server));
    let dial = format!("https://{}", link.addr());
    cut_off_mid_call(&h, &server, &fake, &dial, &DeadLink(link)).await;
    // While cut, both ends gave the connection up by their heartbeats.
    assert!(
        server.log().contains("silent past the heartbeat limit"),
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_comes_back_and_its_late_result_is_fenced() {
    let fake = FakeLlm::start();
    let h = home();
    let server = coordinator_in(&h, None, PLACED, h.anthropic(&fake));
    let dial = server.url.clone();
    cut_off_mid_call(&h, &server, &fake, &dial, &Frozen).await;
}
