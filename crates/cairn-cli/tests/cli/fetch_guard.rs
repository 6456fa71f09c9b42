//! `http_fetch` reaches only public addresses: not the keyless local API,
//! not private ranges, not the metadata service, not through a redirect.

use std::io::{Read, Write};
use std::net::TcpListener;

use cairn_testkit::FakeLlm;
use serde_json::json;

use crate::api::start;
use crate::*;

/// A one-thread HTTP server on `addr` answering every request with `reply`.
fn serve_forever(addr: &str, reply: String) -> u16 {
    let listener = TcpListener::bind(addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    port
}

fn redirect_to(location: &str) -> String {
    format!(
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

#[test]
fn private_loopback_and_metadata_addresses_are_refused() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api_port = server.port().to_string();
    // 127.0.0.2 stands in for a public site: it is allowed by config.
    h.write_config("[tools.http_fetch]\nallow = [\"127.0.0.2\"]\n");
    let ok_port = serve_forever(
        "127.0.0.2:0",
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\npublic".into(),
    );
    let to_api = serve_forever(
        "127.0.0.2:0",
        redirect_to(&format!("http://127.0.0.1:{api_port}/api/v1/sessions")),
    );
    let to_name = serve_forever(
        "127.0.0.2:0",
        redirect_to(&format!("http://localhost:{api_port}/api/v1/sessions")),
    );
    let urls = [
        format!("{}/api/v1/sessions", server.url),
        format!("http://localhost:{api_port}/api/v1/sessions"),
        format!("http://[::ffff:127.0.0.1]:{api_port}/api/v1/sessions"),
        format!("http://2130706433:{api_port}/api/v1/sessions"),
        "http://10.0.0.1/".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://127.0.0.2:{to_api}/"),
        format!("http://127.0.0.2:{to_name}/"),
        format!("http://127.0.0.2:{ok_port}/"),
    ];
    let calls: Vec<(&str, serde_json::Value)> = urls
        .iter()
        .map(|u| ("http_fetch", json!({"url": u})))
        .collect();
    let results = call_tools(h.anthropic(&fake), &fake, &calls);
    let expect = [
        "loopback",
        "loopback",
        "loopback",
        "loopback",
        "private",
        "cloud metadata",
        "redirect refused",
        "loopback",
        "HTTP 200",
    ];
    for ((url, result), want) in urls.iter().zip(&results).zip(expect) {
        assert!(
            result.contains(want),
            "{url}: expected {want:?} in {result}"
        );
    }
    assert!(results[8].contains("public"), "{}", results[8]);
    // Nothing reached the API: the only sessions are the test's own run.
    let sessions = json(&h, &["sessions", "list"]);
    assert_eq!(
        sessions.as_array().map(std::vec::Vec::len),
        Some(1),
        "{sessions}"
    );
}
