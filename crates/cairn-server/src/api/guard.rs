//! Keeps web pages out of the local API. Loopback is not a trust boundary
//! against the user's own browser: a page can send "simple" cross-site
//! requests (text/plain bodies, no preflight) and a DNS-rebinding page can
//! even read the answers. So every route but the signed `/channels/*` checks
//! `Host`, `Origin` and the body's media type before anything else runs.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// Which `Host` and `Origin` values the API accepts beyond loopback.
#[derive(Debug, Clone, Default)]
pub struct BrowserPolicy {
    /// Host names (without port, lower case) accepted besides loopback names
    /// and IP literals.
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`, lower case) allowed to call the API
    /// cross-origin.
    pub allowed_origins: Vec<String>,
}

/// Why a request was turned away.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Host(String),
    Origin(String),
    MediaType(String),
}

impl BrowserPolicy {
    /// A request's Host is acceptable when it cannot be a rebinding name: an
    /// IP literal (a page served from an IP is same-origin only with that IP),
    /// `localhost` or `*.localhost` (browsers resolve those to loopback
    /// themselves), or a name the operator listed.
    fn host_ok(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        if name.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        name == "localhost"
            || name.ends_with(".localhost")
            || self.allowed_hosts.iter().any(|h| h == &name)
    }

    /// No Origin: not a browser, or a same-origin navigation. Otherwise the
    /// origin must be this very server (same scheme-less authority as Host)
    /// or listed.
    fn origin_ok(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        if self.allowed_origins.iter().any(|o| o == &origin) {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        authority.is_some_and(|a| a == host.trim().to_ascii_lowercase())
    }

    fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !self.host_ok(host) {
            return Err(Refusal::Host(host.to_string()));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("(not text)");
            if !self.origin_ok(origin, host) {
                return Err(Refusal::Origin(origin.to_string()));
            }
        }
        if carries_body(method, headers) {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !is_json(ct) {
                return Err(Refusal::MediaType(ct.to_string()));
            }
        }
        Ok(())
    }
}

/// The host part of a Host header (`[::1]:7420` → `::1`), lower case.
/// The name of a `Host` value without its port, or `None` when the value
/// is not a well-formed host: `[::1].evil.example` and `127.0.0.1..` are
/// not loopback, they are malformed.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    let is_port = |p: &str| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit());
    if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return (port_ok && inside.parse::<std::net::Ipv6Addr>().is_ok())
            .then(|| inside.to_string());
    }
    let name = match host.split_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return None,
        None => host.as_str(),
    };
    // One trailing dot is the absolute form of a name; more is not a name.
    let name = name.strip_suffix('.').unwrap_or(name);
    let well_formed =
        !name.is_empty() && !name.ends_with('.') && !name.starts_with('.') && !name.contains("..");
    well_formed.then(|| name.to_string())
}

fn carries_body(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING)
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
}

/// The middleware: refuses with 403 (host, origin) or 415 (media type).
pub async fn browser_guard(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    match state.browser.check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            let (status, code, message) = match refusal {
                Refusal::Host(h) => (
                    StatusCode::FORBIDDEN,
                    "forbidden_host",
                    format!(
                        "Host {h:?} is not this server: use 127.0.0.1, localhost or an IP address, or add the name to server.allowed_hosts (protects against DNS rebinding)"
                    ),
                ),
                Refusal::Origin(o) => (
                    StatusCode::FORBIDDEN,
                    "forbidden_origin",
                    format!(
                        "cross-origin request from {o:?} refused: web pages may not drive this server; add the origin to server.allowed_origins to allow it"
                    ),
                ),
                Refusal::MediaType(ct) => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("request bodies must be Content-Type: application/json, not {ct:?}"),
                ),
            };
            tracing::warn!(code, %message, "request refused");
            let path = req.uri().path();
            let who = cairn_core::audit::Actor::Anonymous;
            crate::audit::refused(&state, who, req.method(), path, status, &message).await;
            ApiError {
                status,
                code,
                message,
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn hosts() {
        let p = BrowserPolicy {
            allowed_hosts: vec!["cairn.example".into()],
            ..Default::default()
        };
        for ok in [
            "127.0.0.1:7420",
            "localhost:7420",
            "LOCALHOST",
            "[::1]:7420",
            "10.1.2.3:7420",
            "app.localhost",
            "cairn.example:443",
            "localhost.",
            "127.0.0.1.",
            "[::1]",
        ] {
            assert!(p.host_ok(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7420",
            "",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[::1].evil.example",
            "[::1]evil:80",
            "127.0.0.1..",
            "127.0.0.1..:7420",
            ".localhost",
            "::1",
            "[not-an-ip]",
            "127.0.0.1:x",
        ] {
            assert!(!p.host_ok(bad), "{bad}");
        }
    }

    #[test]
    fn origins_and_bodies() {
        let p = BrowserPolicy {
            allowed_origins: vec!["https://console.example".into()],
            ..Default::default()
        };
        let post = Method::POST;
        let ok = headers(&[
            ("host", "127.0.0.1:7420"),
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", "2"),
        ]);
        assert_eq!(p.check(&post, &ok), Ok(()));
        let same = headers(&[
            ("host", "127.0.0.1:7420"),
            ("origin", "http://127.0.0.1:7420"),
        ]);
        assert_eq!(p.check(&Method::GET, &same), Ok(()));
        let listed = headers(&[
            ("host", "127.0.0.1:7420"),
            ("origin", "https://console.example"),
        ]);
        assert_eq!(p.check(&Method::GET, &listed), Ok(()));
        for origin in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
            let h = headers(&[("host", "127.0.0.1:7420"), ("origin", origin)]);
            assert!(
                matches!(p.check(&Method::GET, &h), Err(Refusal::Origin(_))),
                "{origin}"
            );
        }
        let plain = headers(&[
            ("host", "127.0.0.1:7420"),
            ("content-type", "text/plain"),
            ("content-length", "10"),
        ]);
        assert!(matches!(p.check(&post, &plain), Err(Refusal::MediaType(_))));
        let none = headers(&[("host", "127.0.0.1:7420"), ("transfer-encoding", "chunked")]);
        assert!(matches!(p.check(&post, &none), Err(Refusal::MediaType(_))));
        let empty = headers(&[("host", "127.0.0.1:7420"), ("content-length", "0")]);
        assert_eq!(p.check(&post, &empty), Ok(()));
    }
}
