//! The OpenAI-compatible endpoint: raw HTTP and the official Python SDK.

use cairn_testkit::{FakeLlm, Reply, test_python};
use serde_json::json;

use crate::api::{Api, start};
use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_over_raw_http() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    let (status, models) = api.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "cairn:default");

    // A stateless client sends the whole conversation: it seeds the new session.
    fake.push([Reply::text("Paris.")]);
    let r = api
        .http
        .post(format!("{}/v1/chat/completions", api.url))
        .json(&json!({"model": "cairn:default", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "I am planning a trip to France."},
            {"role": "assistant", "content": "Nice!"},
            {"role": "user", "content": [{"type": "text", "text": "What is its capital?"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let session = r.headers()["x-cairn-session"].to_str().unwrap().to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Paris.");
    assert_eq!(
        fake.requests()[0].message_texts(),
        [
            "I am planning a trip to France.",
            "Nice!",
            "What is its capital?"
        ]
    );

    // Continuing: only the new message is taken from the request.
    fake.push([Reply::text("About 2 million.")]);
    let r = api
        .http
        .post(format!("{}/v1/chat/completions", api.url))
        .header("X-Cairn-Session", &session)
        .json(&json!({"model": "cairn:default", "stream": true, "messages": [{"role": "user", "content": "Population?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cairn-session"].to_str().unwrap(), session);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let mut streamed = String::new();
    for line in text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
    {
        let chunk: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        streamed.push_str(
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or(""),
        );
    }
    assert_eq!(streamed, "About 2 million.");
    assert_eq!(fake.requests()[1].message_texts().len(), 5);

    // Errors in OpenAI's shape.
    let (status, body) = api
        .post(
            "/v1/chat/completions",
            json!({"model": "cairn:ghost", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    let (status, body) = api
        .raw(
            reqwest::Method::POST,
            "/v1/chat/completions",
            b"{oops".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid_request_error"), "{body}");
    let (status, body) = api
        .post(
            "/v1/chat/completions",
            json!({"model": "cairn:default", "messages": []}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "messages");
}

#[test]
fn the_official_openai_python_sdk_works_against_cairn_serve() {
    let python = test_python();
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    fake.push([
        Reply::text("one"),
        Reply::text("two streamed words"),
        Reply::text("noted"),
        Reply::text("blue"),
    ]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/openai_sdk.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(format!("{}/v1", server.url))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nserver log:\n{}",
        cairn_testkit::describe(&out),
        server.log()
    );
    // The continued request carried the first turn's history.
    let reqs = fake.requests();
    assert_eq!(
        reqs[3].message_texts(),
        ["remember: blue", "noted", "what colour?"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors() {
    let python = test_python();
    let st = std::path::Path::new(&python).with_file_name("schemathesis");
    let h = home();
    let fake = FakeLlm::start();
    // Runs it starts fail fast: the fake has no script and there are no retries.
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_LLM__MAX_ATTEMPTS", "1");
    let server = cairn_testkit::ServerProcess::start(cmd);
    let out = std::process::Command::new(st)
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", server.url),
            "--url",
            &server.url,
        ])
        .args([
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--request-timeout",
            "20",
        ])
        .args([
            "--exclude-path",
            "/api/v1/runs/{id}/ws",
            "--generation-deterministic",
            "--workers",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nserver log:\n{}",
        cairn_testkit::describe(&out),
        server.log()
    );
    let api = Api::new(&server);
    assert_eq!(
        api.get("/healthz").await.0,
        200,
        "healthy after the fuzzing"
    );
    assert_eq!(api.get("/readyz").await.0, 200);
}
