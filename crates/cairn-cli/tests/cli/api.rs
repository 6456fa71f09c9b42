//! Helpers to talk to a running `cairn serve` over HTTP.

use std::time::{Duration, Instant};

use cairn_testkit::{CairnHome, FakeLlm, ServerProcess};
use serde_json::{Value, json};

pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
}

impl Api {
    pub fn new(server: &ServerProcess) -> Api {
        Api {
            http: cairn_llm::http_client(),
            url: server.url.clone(),
        }
    }

    /// Sending `Authorization: Bearer <key>` on every request.
    pub fn with_key(server: &ServerProcess, key: &str) -> Api {
        // Already installed by an earlier client, or installed now.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {key}").parse().unwrap();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        Api {
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
            url: server.url.clone(),
        }
    }

    /// A request with any method and optional body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Over TLS to a coordinator, trusting its cluster's CA (by fingerprint).
    pub fn tls(server: &ServerProcess, ca_sha256: &str) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = cairn_cluster::tls::pinned_client_config(ca_sha256).unwrap();
        Api {
            http: reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .build()
                .unwrap(),
            url: server.url.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A request on its own connection: a server answers an oversized body
    /// early (413) and closes the connection, which must not be reused.
    pub async fn raw(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, String) {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let r = fresh
            .request(method, format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// Posts `body` to the signed webhook channel `hook`, signed now with
    /// `secret` as a sender would.
    pub async fn signed_webhook(
        &self,
        hook: &str,
        secret: &str,
        body: &Value,
    ) -> reqwest::Response {
        let body = body.to_string();
        let now = cairn_core::now_ms() / 1000;
        let (ts, sig) = cairn_testkit::webhook_signature(secret, now, &body);
        self.http
            .post(format!("{}/channels/webhook/{hook}", self.url))
            .header("content-type", "application/json")
            .header("X-Cairn-Timestamp", ts)
            .header("X-Cairn-Signature", sig)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts a message asking for SSE; returns (event type, data) pairs until the stream ends.
    pub async fn post_sse(&self, session: &str, content: &str) -> Vec<(String, Value)> {
        let r = self
            .http
            .post(format!("{}/api/v1/sessions/{session}/messages", self.url))
            .header("accept", "text/event-stream")
            .json(&json!({"content": content}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let body = r.text().await.unwrap();
        let mut parser = cairn_llm::sse::SseParser::default();
        parser.push(body.as_bytes());
        let mut out = Vec::new();
        while let Some(ev) = parser.next_event().unwrap() {
            out.push((ev.event, serde_json::from_str(&ev.data).unwrap()));
        }
        out
    }

    /// Posts a message asking for SSE and hands each event to `on_event` as
    /// it arrives (so a test can act while the run works); returns them all.
    pub async fn post_sse_live(
        &self,
        session: &str,
        content: &str,
        mut on_event: impl FnMut(&str, &Value),
    ) -> Vec<(String, Value)> {
        let mut r = self
            .http
            .post(format!("{}/api/v1/sessions/{session}/messages", self.url))
            .header("accept", "text/event-stream")
            .json(&json!({"content": content}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let mut parser = cairn_llm::sse::SseParser::default();
        let mut out = Vec::new();
        while let Some(bytes) = tokio::time::timeout(Duration::from_secs(60), r.chunk())
            .await
            .expect("the event stream went silent for 60 s")
            .unwrap()
        {
            parser.push(&bytes);
            while let Some(ev) = parser.next_event().unwrap() {
                let data: Value = serde_json::from_str(&ev.data).unwrap();
                on_event(&ev.event, &data);
                out.push((ev.event, data));
            }
        }
        out
    }

    pub async fn session(&self, id: &str) {
        let (status, body) = self.post("/api/v1/sessions", json!({"id": id})).await;
        assert!(status == 201 || status == 200, "{status} {body}");
    }

    /// Posts `content` to `session` and waits (30 s at most) for the run it
    /// starts to finish; returns the run's detail.
    pub async fn turn(&self, session: &str, content: &str) -> Value {
        let (status, body) = self
            .post(
                &format!("/api/v1/sessions/{session}/messages"),
                json!({"content": content}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        self.wait_run(body["id"].as_str().unwrap(), Duration::from_secs(30))
            .await
    }

    /// Polls a run until it is finished.
    pub async fn wait_run(&self, id: &str, within: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (status, detail) = self.get(&format!("/api/v1/runs/{id}")).await;
            assert_eq!(status, 200, "{detail}");
            if ["completed", "failed", "cancelled"]
                .contains(&detail["run"]["status"].as_str().unwrap())
            {
                return detail;
            }
            assert!(
                start.elapsed() < within,
                "run {id} still {} after {within:?}",
                detail["run"]["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A server on a fresh home talking to the fake LLM (Anthropic wire).
pub fn start(h: &CairnHome, fake: &FakeLlm) -> ServerProcess {
    ServerProcess::start(h.anthropic(fake))
}
