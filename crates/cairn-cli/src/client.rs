//! The CLI as a client of a running `cairn serve`, through the same native
//! API every surface uses.

use anyhow::{Context, Result, anyhow, bail};
use cairn_core::RunEvent;
use cairn_core::RunRecord;
use cairn_core::api::{CreateSession, ErrorBody, PostMessage, SessionInfo};
use futures_util::StreamExt;

/// A connection to a server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:7420`); the API key comes
    /// from `CAIRN_SERVER__API_KEY` when set, else the local operator's key
    /// (`$CAIRN_HOME/operator.key`) when this user can read it.
    pub fn new(base: &str) -> Client {
        let operator = || {
            let path = crate::secrets::operator_key_path(&crate::config::home_dir().ok()?);
            let key = std::fs::read_to_string(path).ok()?;
            Some(key.trim().to_string())
        };
        Client {
            http: cairn_llm::http_client(),
            base: base.trim_end_matches('/').to_string(),
            key: std::env::var("CAIRN_SERVER__API_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .or_else(operator)
                .filter(|k| !k.is_empty()),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let b = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => b.bearer_auth(k),
            None => b,
        }
    }

    async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<ErrorBody>(&body)
            .map(|e| e.error.message)
            .unwrap_or(body);
        bail!("server answered {status}: {msg}")
    }

    /// Creates (or finds) a session.
    pub async fn session(&self, agent: &str, id: Option<String>) -> Result<SessionInfo> {
        let resp = self
            .req(reqwest::Method::POST, "/api/v1/sessions")
            .json(&CreateSession {
                agent: agent.to_string(),
                id,
            })
            .send()
            .await
            .with_context(|| format!("cannot reach the cairn server at {}", self.base))?;
        Ok(self.check(resp).await?.json().await?)
    }

    /// Posts a message and follows the run's events until it ends.
    pub async fn post_and_follow(
        &self,
        session: &str,
        content: String,
        on_event: &dyn Fn(&RunEvent),
    ) -> Result<RunRecord> {
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/sessions/{session}/messages"),
            )
            .header("accept", "text/event-stream")
            .json(&PostMessage {
                content,
                wait: false,
            })
            .send()
            .await
            .with_context(|| format!("cannot reach the cairn server at {}", self.base))?;
        let mut body = self.check(resp).await?.bytes_stream();
        let mut parser = cairn_llm::sse::SseParser::default();
        while let Some(chunk) = body.next().await {
            parser.push(&chunk.context("the event stream broke")?);
            while let Some(ev) = parser
                .next_event()
                .map_err(|e| anyhow!("bad event stream from the server: {e}"))?
            {
                let event: RunEvent = serde_json::from_str(&ev.data)
                    .with_context(|| format!("bad event from the server: {}", ev.data))?;
                on_event(&event);
                if let RunEvent::RunFinished { run } = event {
                    return Ok(*run);
                }
            }
        }
        bail!("the server closed the event stream before the run finished")
    }

    /// Asks the server to cancel a run.
    pub async fn cancel(&self, run_id: &str) -> Result<()> {
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/runs/{run_id}/cancel"),
            )
            .send()
            .await?;
        self.check(resp).await.map(|_| ())
    }
}
