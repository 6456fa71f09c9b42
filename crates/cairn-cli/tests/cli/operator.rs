//! Widening an agent's isolation through the API is the operator's: the
//! key `cairn serve` keeps in `$CAIRN_HOME/operator.key` (0600) is needed
//! for a wider sandbox, env, MCP servers, networks or placement; anything
//! narrower, and every read and run, keeps working without it on loopback.

use std::os::unix::fs::PermissionsExt;

use cairn_testkit::FakeLlm;
use serde_json::json;

use crate::api::{Api, start};
use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn agents_are_loosened_only_with_the_operator_key() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    let key_file = h.path().join("operator.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is {mode:o}");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 64);

    let agent = |extra: serde_json::Value| {
        let mut a = json!({"name": "helper", "system_prompt": "x", "model": "", "max_steps": 4,
                           "max_tokens": 100, "tools": ["*"], "stream": false});
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    };
    // Without the key: each widening is refused and named.
    for (extra, field) in [
        (json!({"name": "pwn", "sandbox": "host"}), "sandbox"),
        (
            json!({"name": "pwn", "env": {"LD_PRELOAD": "/x.so"}}),
            "env",
        ),
        (
            json!({"name": "pwn", "network_allow": ["10.0.0.0/8"]}),
            "network_allow",
        ),
    ] {
        let (status, body) = api.post("/api/v1/agents", agent(extra)).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "operator_required", "{body}");
        assert!(body.to_string().contains(field), "{body}");
        assert!(body.to_string().contains("operator.key"), "{body}");
    }
    // A malformed network is a 400 before any key question.
    let (status, body) = api
        .post(
            "/api/v1/agents",
            agent(json!({"name": "pwn", "network_allow": ["10.0.0.0/33"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Narrower than the default, or the same: no key needed.
    let (status, body) = api
        .post("/api/v1/agents", agent(json!({"sandbox": "offline"})))
        .await;
    assert_eq!(status, 201, "{body}");
    // Back from offline to workspace widens it again.
    let put = |body: serde_json::Value, auth: Option<String>| {
        let api = &api;
        async move {
            let mut r = api
                .http
                .put(format!("{}/api/v1/agents/helper", api.url))
                .json(&body);
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = put(agent(json!({"sandbox": "workspace"})), None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = put(
        agent(json!({"sandbox": "workspace"})),
        Some("Bearer wrong".into()),
    )
    .await;
    assert_eq!(status, 403, "a wrong key is no key here: {body}");
    // The operator's key, with the scheme in any case.
    let (status, body) = put(
        agent(json!({"sandbox": "host"})),
        Some(format!("bearer {}", key.trim())),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, listed) = api.get("/api/v1/agents").await;
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains("pwn"), "{listed}");
    assert!(listed.to_string().contains("\"host\""), "{listed}");
}

#[test]
fn a_server_with_an_api_key_also_admits_the_operator() {
    let h = home();
    let fake = FakeLlm::start();
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_SERVER__API_KEY", "the-api-key");
    let server = cairn_testkit::ServerProcess::start(cmd);
    let key = std::fs::read_to_string(h.path().join("operator.key")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = |auth: &str| {
        let url = format!("{}/api/v1/agents", server.url);
        let auth = auth.to_string();
        rt.block_on(async move {
            let mut r = cairn_llm::http_client().get(url);
            if !auth.is_empty() {
                r = r.header("authorization", auth);
            }
            r.send().await.unwrap().status().as_u16()
        })
    };
    assert_eq!(status(""), 401);
    assert_eq!(status("Bearer the-api-key"), 200);
    assert_eq!(status("BEARER the-api-key"), 200);
    assert_eq!(status("Bearer the-api-ke"), 401);
    assert_eq!(status(&format!("Bearer {}", key.trim())), 200);
}
