//! `http_fetch`: an HTTP GET, body capped.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use serde_json::json;

use crate::{CappedOutput, Tool, ToolContext, str_arg};

/// The `http_fetch` tool.
pub struct HttpFetch {
    client: reqwest::Client,
}

/// One client per process: building one loads the system's TLS roots,
/// which costs milliseconds, so it is not done per run.
static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

impl HttpFetch {
    /// A fetcher with a 30 s timeout.
    pub fn new() -> Self {
        let client = CLIENT
            .get_or_init(|| {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .redirect(reqwest::redirect::Policy::limited(5))
                    .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .unwrap_or_else(|_| reqwest::Client::new())
            })
            .clone();
        HttpFetch { client }
    }
}

impl Default for HttpFetch {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Tool for HttpFetch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "http_fetch".into(),
            description: "Fetch a URL with HTTP GET and return the status, content type and body (long bodies are shortened).".into(),
            input_schema: json!({"type": "object", "properties": {"url": {"type": "string", "description": "http:// or https:// URL"}}, "required": ["url"]}),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let url = tool_try!(str_arg(&input, "url"));
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            Ok(u) => {
                return ToolOutput::error(format!(
                    "unsupported scheme {:?}: only http and https",
                    u.scheme()
                ));
            }
            Err(e) => return ToolOutput::error(format!("invalid URL {url:?}: {e}")),
        };
        let fetch = async {
            let mut resp = self.client.get(parsed).send().await?;
            let status = resp.status();
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut body = CappedOutput::new(ctx.output_limit);
            // Stop reading far past the cap: the middle would be dropped anyway.
            while let Some(chunk) = resp.chunk().await? {
                body.push(&chunk);
                if body.total() > ctx.output_limit * 64 {
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, ctype, body.render()))
        };
        tokio::select! {
            r = fetch => match r {
                Ok((status, ctype, body)) => {
                    let text = format!("HTTP {status}\ncontent-type: {ctype}\n\n{body}");
                    if status.is_success() { ToolOutput::ok(text) } else { ToolOutput::error(text) }
                }
                Err(e) => ToolOutput::error(format!("fetching {url} failed: {e}")),
            },
            _ = ctx.cancel.cancelled() => ToolOutput::error("cancelled"),
        }
    }
}
