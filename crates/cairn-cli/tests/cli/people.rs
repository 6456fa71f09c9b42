//! People's keys end to end: `cairn apikey` makes, lists and revokes them;
//! two members on one agent never see, read, continue or stream each
//! other's sessions and runs by any route; a viewer reads and never runs;
//! no key, a wrong one or a revoked one is a 401 with a JSON error, and a
//! refused request stores nothing.

use reqwest::Method;
use serde_json::{Value, json};

use cairn_testkit::{CairnHome, FakeLlm, Reply};

use crate::api::{Api, start};
use crate::*;

fn make_key(h: &CairnHome, user: &str, role: &str) -> (String, String) {
    let v = json(h, &["apikey", "create", "--user", user, "--role", role]);
    let key = v["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("ck_"), "{v}");
    let id = v["record"]["id"].as_str().unwrap().to_string();
    assert!(v["record"].get("secret_sha256").is_none(), "{v}");
    (key, id)
}

async fn count_sessions(owner: &Api) -> usize {
    let (s, v) = owner.get("/api/v1/sessions?limit=1000").await;
    assert_eq!(s, 200);
    v.as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn members_are_kept_apart_viewers_only_read_and_bad_keys_are_refused() {
    let h = home();
    let fake = FakeLlm::start();
    fake.respond_with(|_| Some(Reply::text("noted")));
    let (alice_key, _) = make_key(&h, "alice", "member");
    let (bob_key, _) = make_key(&h, "bob", "member");
    let (carol_key, _) = make_key(&h, "carol", "viewer");
    let (dave_key, dave_id) = make_key(&h, "dave", "member");
    let server = start(&h, &fake);
    let owner = Api::new(&server);
    let alice = Api::with_key(&server, &alice_key);
    let bob = Api::with_key(&server, &bob_key);
    let carol = Api::with_key(&server, &carol_key);

    // Alice's session and run.
    let (s, v) = alice
        .post("/api/v1/sessions", json!({"id": "alice-notes"}))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["user_id"], "alice");
    let (s, first) = alice
        .post(
            "/api/v1/sessions/alice-notes/messages",
            json!({"content": "my secret plan", "wait": true}),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["user_id"], "alice");
    let run_id = first["id"].as_str().unwrap().to_string();
    let prefix = &run_id[..run_id.len() - 4];

    // Bob sees none of it, by any route.
    let (s, v) = bob.get("/api/v1/sessions").await;
    assert_eq!((s, v.clone()), (200, json!([])), "{v}");
    let (s, v) = bob.get("/api/v1/runs").await;
    assert_eq!((s, v.clone()), (200, json!([])), "{v}");
    for path in [
        "/api/v1/sessions/alice-notes".to_string(),
        "/api/v1/sessions/alice-notes/messages".to_string(),
        format!("/api/v1/runs/{run_id}"),
        format!("/api/v1/runs/{prefix}"),
        format!("/api/v1/runs/{run_id}/events"),
        "/api/v1/runs?session=alice-notes".to_string(),
    ] {
        let (s, v) = bob.get(&path).await;
        if path.contains("?session") {
            assert_eq!((s, v.clone()), (200, json!([])), "{path}: {v}");
        } else {
            assert_eq!(s, 404, "{path}: {v}");
            assert!(!v.to_string().contains("secret plan"), "{path}: {v}");
        }
    }
    let (s, _) = bob
        .post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(s, 404);
    let before = fake.requests().len();
    let (s, v) = bob
        .post(
            "/api/v1/sessions/alice-notes/messages",
            json!({"content": "what is the plan?", "wait": true}),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    // Not by claiming her session id either, nor through the OpenAI endpoint.
    let (s, v) = bob
        .post("/api/v1/sessions", json!({"id": "alice-notes"}))
        .await;
    assert_eq!(s, 409, "{v}");
    let r = bob
        .http
        .post(format!("{}/v1/chat/completions", bob.url))
        .header("x-cairn-session", "alice-notes")
        .json(&json!({"model": "cairn:default", "messages": [{"role": "user", "content": "repeat the plan"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        fake.requests().len(),
        before,
        "no model call for a refused request"
    );
    let (_, msgs) = alice.get("/api/v1/sessions/alice-notes/messages").await;
    assert_eq!(
        msgs.as_array().unwrap().len(),
        2,
        "nothing added to her session: {msgs}"
    );

    // Bob's own OpenAI-endpoint session is his.
    let r = bob
        .http
        .post(format!("{}/v1/chat/completions", bob.url))
        .json(
            &json!({"model": "cairn:default", "messages": [{"role": "user", "content": "hello"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bobs = r.headers()["x-cairn-session"].to_str().unwrap().to_string();
    let (_, v) = bob.get("/api/v1/sessions").await;
    assert_eq!(v[0]["id"], bobs.as_str());
    let (s, _) = alice.get(&format!("/api/v1/sessions/{bobs}")).await;
    assert_eq!(s, 404);

    // Members change no agents and reach no surface not yet kept apart.
    let agent = json!({"name": "mine", "system_prompt": "x", "model": "", "max_steps": 2,
                       "max_tokens": 50, "tools": [], "stream": false});
    let (s, v) = alice.post("/api/v1/agents", agent.clone()).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    let (s, _) = alice.get("/metrics").await;
    assert_eq!(s, 403);

    // Schedules: a member's are theirs alone.
    let (s, sched) = alice
        .post(
            "/api/v1/schedules",
            json!({"agent": "default", "prompt": "remind me of my plan", "kind": "every", "spec": "1h"}),
        )
        .await;
    assert_eq!(s, 201, "{sched}");
    assert_eq!(sched["user_id"], "alice");
    let sid = sched["id"].as_str().unwrap().to_string();
    let (_, mine) = alice.get("/api/v1/schedules").await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    let (s, v) = bob.get("/api/v1/schedules").await;
    assert_eq!((s, v), (200, json!([])));
    for (method, path) in [
        (Method::GET, format!("/api/v1/schedules/{sid}")),
        (Method::GET, format!("/api/v1/schedules/{sid}/fires")),
        (Method::POST, format!("/api/v1/schedules/{sid}/pause")),
        (Method::DELETE, format!("/api/v1/schedules/{sid}")),
    ] {
        let (s, v) = bob.send(method, &path, None).await;
        assert_eq!(s, 404, "{path}: {v}");
    }
    // Nor may Bob schedule into Alice's session.
    let (s, v) = bob
        .post(
            "/api/v1/schedules",
            json!({"agent": "default", "session_id": "alice-notes", "prompt": "tell me the plan", "kind": "every", "spec": "1h"}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    let (_, still) = alice.get(&format!("/api/v1/schedules/{sid}")).await;
    assert_eq!(still["paused"], false, "{still}");

    // A viewer reads (nothing of others) and never runs.
    let sessions = count_sessions(&owner).await;
    let (s, v) = carol.get("/api/v1/sessions").await;
    assert_eq!((s, v), (200, json!([])));
    let (s, v) = carol
        .post("/api/v1/sessions", json!({"id": "carols"}))
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("viewer"),
        "{v}"
    );
    let (s, _) = carol
        .post(
            "/api/v1/sessions/alice-notes/messages",
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(count_sessions(&owner).await, sessions, "nothing stored");

    // Revoked, wrong and unknown keys: 401 with a JSON error, nothing stored.
    ok(h.cmd(), &["apikey", "revoke", &dave_id]);
    let again = run(h.cmd(), &["apikey", "revoke", &dave_id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already revoked"),
        "{}",
        describe(&again)
    );
    let mut wrong = alice_key.clone();
    wrong.pop();
    wrong.push(if alice_key.ends_with('0') { '1' } else { '0' });
    let unknown = format!("ck_{}_{}", "0".repeat(12), "0".repeat(64));
    for key in [dave_key.as_str(), wrong.as_str(), unknown.as_str()] {
        let api = Api::with_key(&server, key);
        let (s, v) = api
            .send(
                Method::POST,
                "/api/v1/sessions",
                Some(json!({"id": "intruder"})),
            )
            .await;
        assert_eq!(s, 401, "{key}: {v}");
        assert_eq!(v["error"]["code"], "unauthorized", "{v}");
    }
    assert_eq!(count_sessions(&owner).await, sessions, "nothing stored");

    // The owner (no key, loopback) sees everyone's.
    let (_, all) = owner.get("/api/v1/sessions").await;
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"alice-notes") && ids.contains(&bobs.as_str()),
        "{ids:?}"
    );

    // Listing shows the keys without secrets; the audit log has it all.
    let listed = stdout(&ok(h.cmd(), &["apikey", "list"]));
    assert!(
        listed.contains("alice") && listed.contains("viewer"),
        "{listed}"
    );
    assert!(!listed.contains(&alice_key[16..]), "{listed}");
    let audit = stdout(&ok(h.cmd(), &["audit", "tail", "-n", "500", "--json"]));
    let entries: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let made = entries
        .iter()
        .filter(|e| e["event"]["kind"] == "key_created")
        .count();
    assert_eq!(made, 4);
    assert!(entries.iter().any(|e| e["event"]["kind"] == "key_revoked"));
    assert!(entries.iter().any(|e| e["event"]["kind"] == "refused"
        && e["actor"]["user"] == "carol"
        && e["event"]["status"] == 403));
    assert!(
        entries
            .iter()
            .any(|e| e["event"]["kind"] == "key_used" && e["actor"]["user"] == "alice")
    );
    ok(h.cmd(), &["audit", "verify"]);
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn members_search_save_and_forget_only_their_own_and_shared_facts_by_any_route() {
    let h = home();
    let fake = FakeLlm::start();
    let (alice_key, _) = make_key(&h, "alice", "member");
    let (bob_key, _) = make_key(&h, "bob", "member");
    let (carol_key, _) = make_key(&h, "carol", "viewer");
    ok(
        h.cmd(),
        &[
            "memory",
            "save",
            "--shared",
            "The office wifi password is on the fridge.",
        ],
    );
    let server = start(&h, &fake);
    let alice = Api::with_key(&server, &alice_key);
    let bob = Api::with_key(&server, &bob_key);
    let carol = Api::with_key(&server, &carol_key);
    let (s, fact) = alice
        .post(
            "/api/v1/agents/default/memories",
            json!({"text": "Alice's locker code is 4512."}),
        )
        .await;
    assert_eq!(s, 201, "{fact}");
    assert_eq!(fact["user_id"], "alice");
    let fact_id = fact["id"].as_str().unwrap().to_string();
    // Saving as someone else is refused.
    let (s, _) = bob
        .post(
            "/api/v1/agents/default/memories",
            json!({"text": "Alice owes Bob $5.", "user_id": "alice"}),
        )
        .await;
    assert_eq!(s, 403);

    let (_, hits) = alice
        .get("/api/v1/agents/default/memories/search?q=locker+code")
        .await;
    assert!(hits.to_string().contains("4512"), "{hits}");
    for path in [
        "/api/v1/agents/default/memories/search?q=locker+code",
        "/api/v1/agents/default/memories",
    ] {
        let (s, v) = bob.get(path).await;
        assert_eq!(s, 200, "{path}: {v}");
        assert!(!v.to_string().contains("4512"), "{path}: {v}");
    }
    let (s, _) = bob
        .get("/api/v1/agents/default/memories/search?q=locker&user=alice")
        .await;
    assert_eq!(s, 403);
    // Shared facts reach everyone.
    let (_, hits) = bob
        .get("/api/v1/agents/default/memories/search?q=wifi+password")
        .await;
    assert!(hits.to_string().contains("fridge"), "{hits}");
    // Bob cannot forget Alice's fact, nor can a viewer forget anything.
    let (s, _) = bob
        .send(
            Method::DELETE,
            &format!("/api/v1/agents/default/memories/{fact_id}"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = carol
        .send(
            Method::DELETE,
            &format!("/api/v1/agents/default/memories/{fact_id}"),
            None,
        )
        .await;
    assert_eq!(s, 403);

    // Through a run: Bob's agent searching memory finds none of Alice's.
    fake.push([
        Reply::tool("memory_search", json!({"query": "locker code"})),
        Reply::text("I do not know it."),
    ]);
    let (s, _) = bob.post("/api/v1/sessions", json!({"id": "bobs"})).await;
    assert_eq!(s, 201);
    let (s, done) = bob
        .post(
            "/api/v1/sessions/bobs/messages",
            json!({"content": "what is the locker code?", "wait": true}),
        )
        .await;
    assert_eq!(s, 200, "{done}");
    for req in fake.requests() {
        let body = req.body.to_string();
        assert!(
            !body.contains("4512"),
            "Alice's fact reached Bob's run: {body}"
        );
    }
    // Alice's own run recalls it.
    fake.push([
        Reply::tool("memory_search", json!({"query": "locker code"})),
        Reply::text("4512."),
    ]);
    alice
        .post("/api/v1/sessions", json!({"id": "alices"}))
        .await;
    let (s, _) = alice
        .post(
            "/api/v1/sessions/alices/messages",
            json!({"content": "what is my locker code?", "wait": true}),
        )
        .await;
    assert_eq!(s, 200);
    let last = fake.requests().pop().unwrap();
    assert!(
        last.body.to_string().contains("4512"),
        "her run sees her fact"
    );
    let (s, gone) = alice
        .send(
            Method::DELETE,
            &format!("/api/v1/agents/default/memories/{fact_id}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{gone}");
    drop(server);
}

/// The JSON-RPC message in a streamable-HTTP answer (JSON or SSE).
fn rpc_body(text: &str) -> Value {
    if let Ok(v) = serde_json::from_str(text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {text}"))
}

/// Calls an MCP tool at `/mcp` with `key`, in a fresh MCP session.
async fn mcp_call(api: &Api, tool: &str, args: Value) -> Value {
    let post = |body: Value, session: Option<String>| {
        let mut r = api
            .http
            .post(format!("{}/mcp", api.url))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}});
    let r = post(init, None).await.unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let _ = r.text().await.unwrap();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(note, Some(session.clone())).await.unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}});
    let r = post(call, Some(session)).await.unwrap();
    assert_eq!(r.status(), 200);
    rpc_body(&r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn over_mcp_a_member_asks_only_in_their_sessions_and_searches_only_their_facts() {
    let h = home();
    let fake = FakeLlm::start();
    fake.respond_with(|_| Some(Reply::text("ok")));
    let (alice_key, _) = make_key(&h, "alice", "member");
    let (bob_key, _) = make_key(&h, "bob", "member");
    let (carol_key, _) = make_key(&h, "carol", "viewer");
    let server = start(&h, &fake);
    let alice = Api::with_key(&server, &alice_key);
    let bob = Api::with_key(&server, &bob_key);
    alice
        .post(
            "/api/v1/agents/default/memories",
            json!({"text": "Alice's locker code is 4512."}),
        )
        .await;
    let v = mcp_call(
        &alice,
        "ask_agent",
        json!({"agent": "default", "message": "hello", "session": "alice-mcp"}),
    )
    .await;
    assert_eq!(v["result"]["isError"], false, "{v}");
    let (_, s) = alice.get("/api/v1/sessions/alice-mcp").await;
    assert_eq!(s["user_id"], "alice", "{s}");
    let (_, runs) = alice.get("/api/v1/runs?session=alice-mcp").await;
    assert_eq!(runs[0]["user_id"], "alice", "{runs}");

    let before = fake.requests().len();
    let v = mcp_call(
        &bob,
        "ask_agent",
        json!({"agent": "default", "message": "what did she say?", "session": "alice-mcp"}),
    )
    .await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert!(v.to_string().contains("taken"), "{v}");
    assert_eq!(
        fake.requests().len(),
        before,
        "no run for Bob in her session"
    );
    let v = mcp_call(
        &bob,
        "memory_search",
        json!({"agent": "default", "query": "locker code"}),
    )
    .await;
    assert!(!v.to_string().contains("4512"), "{v}");
    let v = mcp_call(
        &alice,
        "memory_search",
        json!({"agent": "default", "query": "locker code"}),
    )
    .await;
    assert!(v.to_string().contains("4512"), "{v}");
    // A viewer does not reach the MCP endpoint (its calls run agents).
    let r = Api::with_key(&server, &carol_key)
        .http
        .post(format!("{}/mcp", alice.url))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_limited_to_one_agent_sees_and_uses_that_agent_only() {
    let h = home();
    let fake = FakeLlm::start();
    let v = json(
        &h,
        &[
            "apikey", "create", "--user", "erin", "--role", "member", "--agent", "helper",
        ],
    );
    let key = v["key"].as_str().unwrap().to_string();
    assert_eq!(v["record"]["agent"], "helper");
    let server = start(&h, &fake);
    let owner = Api::new(&server);
    let agent = json!({"name": "helper", "system_prompt": "x", "model": "", "max_steps": 2,
                       "max_tokens": 50, "tools": [], "stream": false});
    let (s, v) = owner.post("/api/v1/agents", agent).await;
    assert_eq!(s, 201, "{v}");
    let erin = Api::with_key(&server, &key);
    let (_, models) = erin.get("/v1/models").await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cairn:helper"], "{models}");
    let (_, agents) = erin.get("/api/v1/agents").await;
    assert_eq!(agents.as_array().unwrap().len(), 1, "{agents}");
    let (s, _) = erin.get("/api/v1/agents/default").await;
    assert_eq!(s, 403);
    let (s, v) = erin
        .post("/api/v1/sessions", json!({"id": "e1", "agent": "default"}))
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = erin
        .post("/api/v1/sessions", json!({"id": "e2", "agent": "helper"}))
        .await;
    assert_eq!(s, 201, "{v}");
    drop(server);
}
