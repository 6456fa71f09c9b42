//! `http_fetch`: an HTTP GET, body capped, public addresses only (see
//! `net_guard`), every redirect checked again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use serde_json::json;

use crate::net_guard::{FetchPolicy, GuardedResolver};
use crate::{CappedOutput, Tool, ToolContext, str_arg};

/// The `http_fetch` tool.
#[derive(Default)]
pub struct HttpFetch;

/// One client per policy (in practice one per process): building one loads
/// the system's TLS roots, which costs milliseconds.
static CLIENTS: Mutex<Vec<(FetchPolicy, reqwest::Client)>> = Mutex::new(Vec::new());

const MAX_REDIRECTS: usize = 5;

impl HttpFetch {
    /// The fetcher.
    pub fn new() -> Self {
        HttpFetch
    }

    fn client(policy: &FetchPolicy) -> Result<reqwest::Client, String> {
        let mut clients = CLIENTS.lock().map_err(|_| "http client cache poisoned")?;
        if let Some((_, c)) = clients.iter().find(|(p, _)| p == policy) {
            return Ok(c.clone());
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shared = Arc::new(policy.clone());
        let for_redirects = shared.clone();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // A proxy would be checked instead of the target.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: shared }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match check_url(attempt.url(), &for_redirects) {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(format!("redirect refused: {why}")),
                }
            }))
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        clients.push((policy.clone(), client.clone()));
        Ok(client)
    }
}

/// The checks that need no resolution: the scheme, and a literal address.
/// Names are checked when resolved, by the client's resolver.
fn check_url(url: &reqwest::Url, policy: &FetchPolicy) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "unsupported scheme {:?}: only http and https",
            url.scheme()
        ));
    }
    // The URL parser normalises every IPv4 spelling (0x7f.1, 2130706433)
    // to dotted form, so a literal address is recognised here.
    let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => policy.check(ip).map_err(|e| e.to_string()),
        Err(_) => Ok(()),
    }
}

/// An error with its causes, which reqwest's own message leaves out.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
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
        let policy = &ctx.sandbox.policy.fetch;
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) => u,
            Err(e) => return ToolOutput::error(format!("invalid URL {url:?}: {e}")),
        };
        if let Err(why) = check_url(&parsed, policy) {
            return ToolOutput::error(format!("refused {url}: {why}"));
        }
        let client = tool_try!(Self::client(policy).map_err(ToolOutput::error));
        let fetch = async {
            let mut resp = client.get(parsed).send().await?;
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
                Err(e) => ToolOutput::error(format!("fetching {url} failed: {}", chain(&e))),
            },
            _ = ctx.cancel.cancelled() => ToolOutput::error("cancelled"),
        }
    }
}
