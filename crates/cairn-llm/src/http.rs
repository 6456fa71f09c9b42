//! HTTP plumbing shared by the providers: the client, error mapping, and a
//! reader that turns a streaming body into SSE events with an idle timeout.

use std::sync::Once;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::HeaderMap;

use crate::LlmError;
use crate::sse::{SseEvent, SseParser};

static CRYPTO: Once = Once::new();

/// A client with sane timeouts; rustls with the ring provider.
pub fn client() -> reqwest::Client {
    CRYPTO.call_once(|| {
        // Fails only if another provider was installed first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Identifies a provider in errors.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub provider: String,
    pub key_var: &'static str,
    pub timeout: Duration,
}

impl Endpoint {
    /// Sends a request, mapping transport failures and non-2xx answers.
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
        stream: bool,
    ) -> Result<reqwest::Response, LlmError> {
        // A streaming call may legitimately last long; its idle gaps are
        // bounded by `SseReader` instead of a total timeout.
        let req = if stream {
            req
        } else {
            req.timeout(self.timeout)
        };
        let resp = req.send().await.map_err(|e| self.transport(e, url))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.status_error(resp).await)
    }

    pub fn transport(&self, e: reqwest::Error, url: &str) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout {
                provider: self.provider.clone(),
                seconds: self.timeout.as_secs(),
            }
        } else {
            LlmError::Connect {
                provider: self.provider.clone(),
                url: url.to_string(),
                message: error_chain(&e),
            }
        }
    }

    async fn status_error(&self, resp: reqwest::Response) -> LlmError {
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let body = resp.text().await.unwrap_or_default();
        let message = error_message(&body);
        let provider = self.provider.clone();
        if let Some(limit) = crate::tokens::context_overflow(status, &body) {
            return LlmError::ContextOverflow {
                provider,
                message,
                limit,
            };
        }
        // A usage limit that says when it resets is a wait, whatever the
        // status it came with (subscription windows, monthly quotas).
        if status != 401
            && let Some(wait) = crate::usage_limit::reset_wait(&message, now_s())
        {
            return LlmError::RateLimited {
                provider,
                message,
                retry_after: Some(retry_after.map_or(wait, |h| h.max(wait))),
            };
        }
        match status {
            401 | 403 => LlmError::Auth {
                provider,
                status,
                message,
                var: self.key_var,
            },
            // OpenAI's "out of credits" comes as 429 too, but waiting does
            // not help: it is a refusal until someone pays.
            429 if body.contains("insufficient_quota") => LlmError::Rejected {
                provider,
                status,
                message: format!("{message} (the account is out of credit; waiting will not help)"),
            },
            429 => LlmError::RateLimited {
                provider,
                message,
                retry_after,
            },
            408 | 409 | 500..=599 => LlmError::Server {
                provider,
                status,
                message,
                retry_after,
            },
            _ => LlmError::Rejected {
                provider,
                status,
                message,
            },
        }
    }

    /// Reads a complete (non-streaming) answer as JSON.
    pub async fn json_body(
        &self,
        resp: reqwest::Response,
        url: &str,
    ) -> Result<serde_json::Value, LlmError> {
        let text = resp.text().await.map_err(|e| self.transport(e, url))?;
        serde_json::from_str(&text).map_err(|e| self.protocol(format!("body is not JSON: {e}")))
    }

    pub fn protocol(&self, message: impl Into<String>) -> LlmError {
        LlmError::Protocol {
            provider: self.provider.clone(),
            message: message.into(),
        }
    }
}

/// `error.message` from Anthropic's and OpenAI's error JSON, else the body.
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    if let Some(msg) = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")))
        .and_then(|m| m.as_str())
    {
        return msg.to_string();
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        "(empty body)".to_string()
    } else {
        trimmed.chars().take(500).collect()
    }
}

fn now_s() -> i64 {
    cairn_core::now_ms() / 1000
}

/// `retry-after-ms` (OpenAI) or `retry-after` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    get("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Reads SSE events from a streaming response.
pub(crate) struct SseReader {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    endpoint: Endpoint,
    url: String,
    idle: Duration,
}

impl SseReader {
    pub fn new(resp: reqwest::Response, endpoint: &Endpoint, url: &str) -> Self {
        SseReader {
            body: resp.bytes_stream().boxed(),
            parser: SseParser::default(),
            idle: endpoint.timeout,
            endpoint: endpoint.clone(),
            url: url.to_string(),
        }
    }

    /// The next event; `None` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, LlmError> {
        loop {
            if let Some(ev) = self
                .parser
                .next_event()
                .map_err(|m| self.endpoint.protocol(m))?
            {
                return Ok(Some(ev));
            }
            match tokio::time::timeout(self.idle, self.body.next()).await {
                Err(_) => {
                    return Err(LlmError::Timeout {
                        provider: self.endpoint.provider.clone(),
                        seconds: self.idle.as_secs(),
                    });
                }
                Ok(None) => {
                    if self.parser.has_partial() {
                        return Err(self
                            .endpoint
                            .protocol("stream ended in the middle of an event"));
                    }
                    return Ok(None);
                }
                Ok(Some(Err(e))) => return Err(self.endpoint.transport(e, &self.url)),
                Ok(Some(Ok(chunk))) => self.parser.push(&chunk),
            }
        }
    }

    /// A stream that stopped before the provider said it was done. Treated as
    /// a broken connection: transient, worth a retry.
    pub fn cut_off(&self) -> LlmError {
        LlmError::Connect {
            provider: self.endpoint.provider.clone(),
            url: self.url.clone(),
            message: "stream ended before the response was complete".into(),
        }
    }
}

/// Parses tool-call arguments; arguments that are not a JSON object are kept
/// as a string so the runtime can tell the model, instead of failing the run.
pub(crate) fn parse_tool_args(raw: &str) -> serde_json::Value {
    if raw.trim().is_empty() {
        return serde_json::json!({});
    }
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => serde_json::Value::String(raw.to_string()),
    }
}
