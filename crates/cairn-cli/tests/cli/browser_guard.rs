//! A web page in the user's browser cannot drive `cairn serve`: the
//! requests a hostile page can make (cross-site "simple" posts, DNS
//! rebinding) are refused before they reach a model or a tool.

use std::io::{Read, Write};
use std::net::TcpStream;

use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

use crate::api::start;
use crate::*;

/// Sends one raw HTTP/1.1 request as a browser would write it and returns
/// the status and body.
pub(crate) fn raw_request(url: &str, head: &str, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[test]
fn cross_site_and_rebinding_requests_reach_no_model() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let port = server.port().to_string();
    // Were a request to get through, the model would run a command that
    // leaves a mark in the workspace.
    fake.push([
        Reply::tool("exec", json!({"command": "echo pwned > pwned.txt"})),
        Reply::text("done"),
    ]);
    let body = json!({"model": "cairn:default", "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    let cases = [
        // The request: text/plain needs no CORS preflight.
        (
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: evil.example:{port}\r\nOrigin: http://evil.example\r\nContent-Type: text/plain"
            ),
            403,
            "forbidden_host",
        ),
        // DNS rebinding: the page's name now resolves to 127.0.0.1, so the
        // browser sends its own name as Host and no Origin on same-origin.
        (
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: rebind.evil.example:{port}\r\nContent-Type: application/json"
            ),
            403,
            "forbidden_host",
        ),
        // A cross-site page talking to 127.0.0.1 directly.
        (
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nContent-Type: application/json"
            ),
            403,
            "forbidden_origin",
        ),
        (
            format!(
                "POST /api/v1/sessions HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: null\r\nContent-Type: application/json"
            ),
            403,
            "forbidden_origin",
        ),
        // No Origin (e.g. a form post with a stripped referrer policy) but a
        // body that is not JSON.
        (
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain"
            ),
            415,
            "unsupported_media_type",
        ),
        (
            format!(
                "POST /api/v1/sessions/s1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded"
            ),
            415,
            "unsupported_media_type",
        ),
        // A rebinding page reading data, and opening a WebSocket.
        (
            format!("GET /api/v1/sessions HTTP/1.1\r\nHost: evil.example:{port}"),
            403,
            "forbidden_host",
        ),
        (
            format!("GET /metrics HTTP/1.1\r\nHost: evil.example:{port}"),
            403,
            "forbidden_host",
        ),
        (
            format!(
                "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example"
            ),
            403,
            "forbidden_origin",
        ),
        (
            format!(
                "GET /api/v1/runs/r1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
            ),
            403,
            "forbidden_origin",
        ),
    ];
    for (head, status, code) in &cases {
        let (got, text) = raw_request(&server.url, head, &body);
        assert_eq!(got, *status, "{head}\n{text}");
        assert!(text.contains(code), "{head}\n{text}");
    }
    assert!(
        fake.requests().is_empty(),
        "a refused request reached the model"
    );
    assert!(!h.workspace().join("pwned.txt").exists());

    // Local tools keep working without a key: loopback Host, no Origin, JSON.
    fake.clear_script();
    fake.push([Reply::text("hello")]);
    let (got, text) = raw_request(
        &server.url,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/json\r\nAuthorization: Bearer anything"
        ),
        &body,
    );
    assert_eq!(got, 200, "{text}");
    // So does a page the server itself serves (same origin).
    let (got, text) = raw_request(
        &server.url,
        &format!(
            "GET /api/v1/agents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}"
        ),
        "",
    );
    assert_eq!(got, 200, "{text}");
}

#[test]
fn configured_hosts_and_origins_are_let_in() {
    let h = home();
    let fake = FakeLlm::start();
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_SERVER__ALLOWED_HOSTS", "[\"cairn.internal\"]")
        .env(
            "CAIRN_SERVER__ALLOWED_ORIGINS",
            "[\"https://console.internal\"]",
        );
    let server = cairn_testkit::ServerProcess::start(cmd);
    let port = server.port().to_string();
    let (got, text) = raw_request(
        &server.url,
        &format!(
            "GET /api/v1/agents HTTP/1.1\r\nHost: cairn.internal:{port}\r\nOrigin: https://console.internal"
        ),
        "",
    );
    assert_eq!(got, 200, "{text}");
    let (got, text) = raw_request(
        &server.url,
        &format!("GET /api/v1/agents HTTP/1.1\r\nHost: other.internal:{port}"),
        "",
    );
    assert_eq!(got, 403, "{text}");
}
