//! The native API over HTTP: sessions, messages, SSE, runs, bad input.

use std::time::Duration;

use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

use crate::api::{Api, start};
use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_using_run_streams_its_events_over_sse() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    api.session("s1").await;
    fake.push([
        Reply::tool("write_file", json!({"path": "hello.txt", "content": "hi"})),
        Reply::text("Wrote hello.txt."),
    ]);
    let events = api.post_sse("s1", "write hello.txt").await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run_finished"), "{kinds:?}");
    assert!(
        kinds.contains(&"tool_call")
            && kinds.contains(&"tool_result")
            && kinds.contains(&"text_delta"),
        "{kinds:?}"
    );
    let text: String = events
        .iter()
        .filter(|(k, _)| k == "text_delta")
        .map(|(_, v)| v["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "Wrote hello.txt.");
    let run = &events.last().unwrap().1["run"];
    assert_eq!(run["status"], "completed");
    assert_eq!(
        std::fs::read_to_string(h.workspace().join("hello.txt")).unwrap(),
        "hi"
    );

    let (status, detail) = api
        .get(&format!("/api/v1/runs/{}", run["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(detail["journal"].as_array().unwrap().len(), 7);
    let (_, messages) = api.get("/api/v1/sessions/s1/messages").await;
    assert_eq!(messages.as_array().unwrap().len(), 4);
    let (_, runs) = api.get("/api/v1/runs?session=s1").await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    // Events of a finished run: just the end.
    let r = api
        .http
        .get(format!(
            "{}/api/v1/runs/{}/events",
            api.url,
            run["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("event: run_finished"), "{body}");

    // The CLI is a client of the same API.
    fake.push([Reply::text("via the server")]);
    let out = ok(
        h.cmd(),
        &["run", "--server", &server.url, "--session", "s1", "hello"],
    );
    assert!(stdout(&out).contains("via the server"));
    let (_, messages) = api.get("/api/v1/sessions/s1/messages").await;
    assert_eq!(messages.as_array().unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_without_streaming_and_waiting() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    api.session("s").await;
    fake.push([Reply::text("one"), Reply::text("two")]);
    let (status, run) = api
        .post("/api/v1/sessions/s/messages", json!({"content": "first"}))
        .await;
    assert_eq!(status, 202);
    assert_eq!(run["status"], "queued");
    let done = api
        .wait_run(run["id"].as_str().unwrap(), Duration::from_secs(20))
        .await;
    assert_eq!(done["run"]["output"], "one");
    let (status, run) = api
        .post(
            "/api/v1/sessions/s/messages",
            json!({"content": "second", "wait": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"], "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_to_one_session_lose_nothing() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    api.session("busy").await;
    let n = 12;
    for i in 0..n {
        fake.push([Reply::text(&format!("answer {i}"))]);
    }
    let mut tasks = Vec::new();
    for i in 0..n {
        let http = api.http.clone();
        let url = format!("{}/api/v1/sessions/busy/messages", api.url);
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .json(&json!({"content": format!("question {i}"), "wait": true}))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }));
    }
    for t in tasks {
        let (status, run) = t.await.unwrap();
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["status"], "completed", "{run}");
    }
    let (_, messages) = api.get("/api/v1/sessions/busy/messages").await;
    let messages = messages.as_array().unwrap();
    assert_eq!(messages.len(), 2 * n);
    for pair in messages.chunks(2) {
        assert_eq!(pair[0]["role"], "user");
        assert_eq!(pair[1]["role"], "assistant");
    }
    let questions: std::collections::BTreeSet<String> = messages
        .iter()
        .step_by(2)
        .map(|m| m["content"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(questions.len(), n, "every question kept once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx_answers() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    api.session("s").await;
    use reqwest::Method;
    let cases: Vec<(Method, &str, Vec<u8>, u16, &str)> = vec![
        (Method::POST, "/api/v1/sessions", b"{not json".to_vec(), 400, "invalid JSON body"),
        (Method::POST, "/api/v1/sessions", br#"{"agent": 5}"#.to_vec(), 400, "invalid type"),
        (Method::POST, "/api/v1/sessions", br#"{"id": "../x"}"#.to_vec(), 400, "invalid session"),
        (Method::POST, "/api/v1/sessions", br#"{"agent": "ghost"}"#.to_vec(), 404, "not found"),
        (Method::POST, "/api/v1/sessions/s/messages", br#"{"content": "   "}"#.to_vec(), 400, "empty"),
        (Method::POST, "/api/v1/sessions/s/messages", br#"{"contents": "x"}"#.to_vec(), 400, "unknown field"),
        (Method::POST, "/api/v1/sessions/nope/messages", br#"{"content": "x"}"#.to_vec(), 404, "not found"),
        (Method::POST, "/api/v1/sessions/s/messages", vec![b'x'; 2 * 1024 * 1024], 413, "larger than"),
        (Method::GET, "/api/v1/runs/run_nope", vec![], 404, "not found"),
        (Method::POST, "/api/v1/runs/run_nope/cancel", vec![], 404, "not found"),
        (Method::GET, "/api/v1/nothing-here", vec![], 404, "no such endpoint"),
        (Method::POST, "/api/v1/agents", br#"{"name": "x y"}"#.to_vec(), 400, ""),
        (Method::POST, "/api/v1/agents", br#"{"name":"a","system_prompt":"p","model":"","max_steps":5,"max_tokens":10,"tools":["rm_rf"],"stream":true}"#.to_vec(), 400, "unknown tool"),
        (Method::POST, "/api/v1/agents", br#"{"name":"a","system_prompt":"p","model":"","max_steps":5,"max_tokens":10,"tools":["*"],"stream":true,"owner":"nochat"}"#.to_vec(), 400, "<channel>:<chat>"),
        (Method::POST, "/api/v1/agents", br#"{"name":"a","system_prompt":"p","model":"","max_steps":5,"max_tokens":10,"tools":["*"],"stream":true,"mcp":["nope"]}"#.to_vec(), 400, "no MCP server named"),
    ];
    for (method, path, body, want, needle) in cases {
        let (status, text) = api.raw(method.clone(), path, body).await;
        assert_eq!(status, want, "{method} {path}: {text}");
        if want != 405 {
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
            assert!(
                v["error"]["message"].as_str().unwrap().contains(needle),
                "{method} {path}: {text}"
            );
        }
    }
    let (status, _) = api.raw(Method::DELETE, "/api/v1/sessions", vec![]).await;
    assert_eq!(status, 405);
    assert_eq!(api.get("/healthz").await.0, 200);
    assert_eq!(api.get("/readyz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_can_be_created_and_used() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    let spec = json!({"name": "reader", "system_prompt": "You only read.", "model": "claude-haiku-4-5", "max_steps": 3, "max_tokens": 100, "tools": ["read_file"], "stream": false});
    let (status, _) = api.post("/api/v1/agents", spec.clone()).await;
    assert_eq!(status, 201);
    assert_eq!(api.post("/api/v1/agents", spec).await.0, 409);
    let (_, agents) = api.get("/api/v1/agents").await;
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "reader")
    );
    let (status, _) = api
        .post("/api/v1/sessions", json!({"agent": "reader", "id": "r1"}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        api.post("/api/v1/sessions", json!({"agent": "default", "id": "r1"}))
            .await
            .0,
        409,
        "a session keeps its agent"
    );
    fake.push([Reply::text("read it")]);
    let (_, run) = api
        .post(
            "/api/v1/sessions/r1/messages",
            json!({"content": "go", "wait": true}),
        )
        .await;
    assert_eq!(run["status"], "completed");
    let req = &fake.requests()[0];
    assert_eq!(req.body["system"], "You only read.");
    assert_eq!(req.body["model"], "claude-haiku-4-5");
    assert_eq!(req.body["tools"].as_array().unwrap().len(), 1);
    assert!(!req.stream());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_run_can_be_cancelled() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    api.session("s").await;
    fake.push([Reply::tool("exec", json!({"command": "sleep 60"}))]);
    let (_, run) = api
        .post("/api/v1/sessions/s/messages", json!({"content": "sleep"}))
        .await;
    let id = run["id"].as_str().unwrap().to_string();
    crate::wait_for_requests(&fake, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = api
        .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202);
    let done = api.wait_run(&id, Duration::from_secs(10)).await;
    assert_eq!(done["run"]["status"], "cancelled");
    assert_eq!(
        api.post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
            .await
            .0,
        409
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_api() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/sessions/{id}/messages",
        "/api/v1/runs/{id}",
        "/api/v1/runs/{id}/events",
        "/v1/chat/completions",
        "/healthz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["RunRecord"].is_object());
}

#[test]
fn listening_beyond_loopback_needs_an_api_key() {
    let h = home();
    let fake = FakeLlm::start();
    let mut cmd = h.anthropic(&fake);
    cmd.args(["serve", "--listen", "0.0.0.0:0"]);
    let out = run(cmd, &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("CAIRN_SERVER__API_KEY"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_enforced_when_set() {
    let h = home();
    let fake = FakeLlm::start();
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_SERVER__API_KEY", "s3cret");
    let server = cairn_testkit::ServerProcess::start(cmd);
    let api = Api::new(&server);
    assert_eq!(api.get("/api/v1/sessions").await.0, 401);
    assert_eq!(
        api.get("/metrics").await.0,
        401,
        "metrics are behind the key too"
    );
    assert_eq!(api.get("/healthz").await.0, 200);
    let r = api
        .http
        .get(format!("{}/api/v1/sessions", api.url))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(!server.log().contains("s3cret"), "the key is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_events_over_websocket() {
    use futures_util::StreamExt;
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    api.session("ws").await;
    fake.push([Reply::Delayed(
        Duration::from_millis(700),
        Box::new(Reply::text("over the socket")),
    )]);
    let (_, run) = api
        .post("/api/v1/sessions/ws/messages", json!({"content": "hi"}))
        .await;
    let id = run["id"].as_str().unwrap();
    let ws_url = format!(
        "{}/api/v1/runs/{id}/ws",
        server.url.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let mut kinds = Vec::new();
    let mut text = String::new();
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(20), socket.next())
        .await
        .unwrap()
    {
        match msg.unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "text_delta" {
                    text.push_str(v["text"].as_str().unwrap());
                }
                kinds.push(v["type"].as_str().unwrap().to_string());
            }
            tokio_tungstenite::tungstenite::Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("run_finished"),
        "{kinds:?}"
    );
    assert_eq!(text, "over the socket", "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_does_not_hold_up_others() {
    use tokio::io::AsyncWriteExt;
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    // Ten clients that send half a request and then stall.
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut stalled = Vec::new();
    for _ in 0..10 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"id\":").await.unwrap();
        stalled.push(s);
    }
    let started = std::time::Instant::now();
    for i in 0..20 {
        let (status, _) = api
            .post("/api/v1/sessions", json!({"id": format!("quick-{i}")}))
            .await;
        assert_eq!(status, 201);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "others were served while the slow ones stalled"
    );
    drop(stalled);
    assert_eq!(api.get("/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_the_server_starts_and_says_what_to_set() {
    let h = home();
    let server = cairn_testkit::ServerProcess::start(h.cmd());
    // The explanation follows the "serving on" line the start waits for.
    let started = std::time::Instant::now();
    while !server.log().contains("not ready") && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        server.log().contains("ANTHROPIC_API_KEY"),
        "{}",
        server.log()
    );
    let api = Api::new(&server);
    assert_eq!(api.get("/healthz").await.0, 200);
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(
        ready["checks"].to_string().contains("OPENAI_BASE_URL"),
        "{ready}"
    );
    api.session("s").await;
    let (_, run) = api
        .post(
            "/api/v1/sessions/s/messages",
            json!({"content": "hi", "wait": true}),
        )
        .await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"].as_str().unwrap().contains("ANTHROPIC_API_KEY"),
        "{run}"
    );
}

/// A command that prints a line, then waits until the file `go` appears in
/// its workspace (made by the test on seeing that line), then prints more:
/// it finishes only if its output reached the watcher while it ran.
const WAITS_FOR_ITS_WATCHER: &str = "echo first-line; i=0; while [ ! -e go ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; [ -e go ] && echo second-line";

/// The streamed output of a run's events, and whether every chunk came
/// before the call's result.
fn streamed_output(events: &[(String, serde_json::Value)]) -> (String, bool) {
    let mut text = String::new();
    let mut result_seen = false;
    let mut in_order = true;
    for (kind, data) in events {
        match kind.as_str() {
            "tool_output" => {
                in_order &= !result_seen;
                text.push_str(data["chunk"].as_str().unwrap());
            }
            "tool_result" => result_seen = true,
            _ => {}
        }
    }
    (text, in_order)
}

/// Runs `WAITS_FOR_ITS_WATCHER` in a turn on `session`, making `go` when
/// its first line streams in; asserts the output streamed, whole and before
/// the result, and returns what the model was told of the call.
pub async fn run_watched_command(
    api: &Api,
    fake: &FakeLlm,
    session: &str,
    go: &std::path::Path,
) -> String {
    fake.push([
        Reply::tool("exec", json!({"command": WAITS_FOR_ITS_WATCHER})),
        Reply::text("done"),
    ]);
    let asked = fake.requests().len();
    let events = api
        .post_sse_live(session, "run it", |kind, data| {
            if kind == "tool_output" && data["chunk"].as_str().unwrap().contains("first-line") {
                std::fs::write(go, "").unwrap();
            }
        })
        .await;
    let (streamed, in_order) = streamed_output(&events);
    assert!(in_order, "{events:?}");
    assert!(
        streamed.contains("first-line") && streamed.contains("second-line"),
        "{streamed:?}"
    );
    fake.requests()[asked + 1].message_texts().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_streams_its_output_while_it_runs() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    api.session("s1").await;
    let told = run_watched_command(&api, &fake, "s1", &h.workspace().join("go")).await;
    assert!(
        told.contains("exit code: 0") && told.contains("second-line"),
        "the command saw its watcher act: {told}"
    );
}
