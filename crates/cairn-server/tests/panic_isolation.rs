//! A panic while driving one run fails that run only: the server, other
//! runs and the session stay usable. The provider here is a stand-in for a
//! cloud model that panics on one particular input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{ContentBlock, ModelRequest, ModelResponse, StopReason, Usage};
use cairn_llm::{EventSink, LlmError, Provider};
use cairn_runtime::Runtime;
use cairn_server::{ServeOptions, serve};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct PanicsOnCue;

#[async_trait]
impl Provider for PanicsOnCue {
    fn name(&self) -> &str {
        "test"
    }
    fn default_model(&self) -> &str {
        "test-model"
    }
    async fn complete(
        &self,
        req: &ModelRequest,
        _: EventSink<'_>,
    ) -> Result<ModelResponse, LlmError> {
        let last = req
            .messages
            .last()
            .map(cairn_core::Message::text)
            .unwrap_or_default();
        if last.contains("PANIC") {
            panic!("provider bug triggered by {last:?}");
        }
        Ok(ModelResponse {
            content: vec![ContentBlock::Text {
                text: format!("echo: {last}"),
            }],
            stop_reason: StopReason::EndTurn,
            usage: Usage::default(),
            model: "test-model".into(),
            route: None,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_run_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = cairn_store::Store::open_sqlite(&dir.path().join("c.db"))
        .await
        .unwrap();
    let rt = Runtime::new(store, Arc::new(PanicsOnCue), dir.path().join("ws"));
    let opts = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        concurrency: 2,
        body_limit: 1 << 20,
        shutdown_grace: Duration::from_secs(2),
        api_key: None,
        operator_key: None,
        watchdog_stuck: Duration::ZERO,
        watchdog_action: Default::default(),
        channels: Default::default(),
        browser: Default::default(),
        coordinator: None,
        tls: None,
        insecure: false,
    };
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(serve(rt, opts, shutdown.clone(), move |addr| {
        let _ = tx.send(addr);
    }));
    let base = format!("http://{}", rx.await.unwrap());
    let http = cairn_llm::http_client();
    let post = |path: String, body: Value| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    post("/api/v1/sessions".into(), json!({"id": "a"})).await;
    let (status, run) = post(
        "/api/v1/sessions/a/messages".into(),
        json!({"content": "PANIC now", "wait": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("internal error"),
        "{run}"
    );

    // The same session and the server go on working.
    let (_, run) = post(
        "/api/v1/sessions/a/messages".into(),
        json!({"content": "hello", "wait": true}),
    )
    .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"], "echo: hello");
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
