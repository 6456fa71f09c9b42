//! The audit log end to end: what a tool run, a refused request and an
//! agent change leave in it; `cairn audit verify` passes untouched and
//! fails, naming the entry, after each tampering done directly in the
//! database file; a server with another audit key will not write to it.

use cairn_testkit::{FakeLlm, Reply};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::{Api, start};
use crate::*;

fn entries(h: &cairn_testkit::CairnHome) -> Vec<Value> {
    let out = ok(h.cmd(), &["audit", "tail", "-n", "1000", "--json"]);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn kinds(all: &[Value]) -> Vec<String> {
    all.iter()
        .map(|e| e["event"]["kind"].as_str().unwrap().to_string())
        .collect()
}

/// A web page's POST to `path` (another Origin); the status answered.
async fn cross_site_post(api: &Api, path: &str) -> u16 {
    let r = api
        .http
        .post(format!("{}{path}", api.url))
        .header("origin", "http://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn tamper(h: &cairn_testkit::CairnHome, sql: &str) {
    let url = format!("sqlite://{}", h.path().join("cairn.db").display());
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_runs_refusals_and_changes_are_sealed_and_tampering_is_named() {
    let h = home();
    let fake = FakeLlm::start();
    let args = json!({"path": "notes.txt", "content": "hello"});
    fake.push([
        Reply::tool("write_file", args.clone()),
        Reply::tool("no_such_tool", json!({})),
        Reply::text("done"),
    ]);
    ok(h.anthropic(&fake), &["run", "write notes.txt"]);
    let key_file = h.path().join("audit.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "audit.key is {mode:o}");

    let server = start(&h, &fake);
    let api = Api::new(&server);
    // A web page's cross-origin request: refused, and recorded.
    assert_eq!(cross_site_post(&api, "/api/v1/sessions").await, 403);
    let (status, body) = api
        .post(
            "/api/v1/agents",
            json!({"name": "helper", "system_prompt": "x", "model": "", "max_steps": 4,
                   "max_tokens": 100, "tools": ["read_file"], "stream": false}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let all = entries(&h);
    let k = kinds(&all);
    for want in [
        "tool_ran",
        "tool_refused",
        "started",
        "refused",
        "key_used",
        "agent_changed",
    ] {
        assert!(k.contains(&want.to_string()), "no {want} in {k:?}");
    }
    let ran = all
        .iter()
        .find(|e| e["event"]["kind"] == "tool_ran")
        .unwrap();
    assert_eq!(ran["event"]["tool"], "write_file");
    assert_eq!(ran["event"]["place"], "local");
    assert_eq!(ran["actor"]["type"], "agent");
    // The digest of the input, not the input.
    let digest: String = Sha256::digest(args.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(ran["event"]["input_sha256"], digest.as_str());
    assert!(!ran.to_string().contains("hello"), "{ran}");
    let refused = all
        .iter()
        .find(|e| e["event"]["kind"] == "refused")
        .unwrap();
    assert_eq!(refused["event"]["status"], 403);
    assert_eq!(refused["event"]["action"], "POST /api/v1/sessions");
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    // The human tail reads.
    let text = stdout(&ok(h.cmd(), &["audit", "tail"]));
    assert!(text.contains("ran write_file"), "{text}");
    assert!(text.contains("refused POST /api/v1/sessions"), "{text}");

    // Untouched: intact, with the head to keep.
    let out = ok(h.cmd(), &["audit", "verify"]);
    let n = all.len();
    assert!(
        stdout(&out).contains(&format!("intact: {n} entries")),
        "{}",
        describe(&out)
    );
    let v = json(&h, &["audit", "verify"]);
    assert_eq!(v["intact"], true);
    let head = v["head"].as_str().unwrap().to_string();
    assert!(head.starts_with(&format!("{n}:")), "{head}");

    // Export: one line per entry, the same as tail's.
    let exported = stdout(&ok(h.cmd(), &["audit", "export"]));
    assert_eq!(exported.lines().count(), n);

    // An edit is found at its entry, and verify exits 1.
    tamper(&h, "UPDATE audit_log SET event = replace(event, '403', '200') WHERE seq = (SELECT min(seq) FROM audit_log WHERE event LIKE '%\"refused\"%')").await;
    let bad = run(h.cmd(), &["audit", "verify"]);
    assert_eq!(bad.status.code(), Some(1), "{}", describe(&bad));
    let refused_seq = refused["seq"].as_i64().unwrap();
    assert!(
        stdout(&bad).contains(&format!("entry {refused_seq} does not match its seal")),
        "{}",
        describe(&bad)
    );
    tamper(&h, "UPDATE audit_log SET event = replace(event, '\"status\":200', '\"status\":403') WHERE event LIKE '%\"refused\"%'").await;
    ok(h.cmd(), &["audit", "verify"]);

    // The newest entry deleted: a valid shorter chain, unless the head is given.
    tamper(
        &h,
        "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)",
    )
    .await;
    ok(h.cmd(), &["audit", "verify"]);
    let cut = run(h.cmd(), &["audit", "verify", "--head", &head]);
    assert_eq!(cut.status.code(), Some(1), "{}", describe(&cut));
    assert!(stdout(&cut).contains("recorded head"), "{}", describe(&cut));
    // A malformed head is a usage error.
    let junk = run(h.cmd(), &["audit", "verify", "--head", "seven"]);
    assert_eq!(junk.status.code(), Some(2), "{}", describe(&junk));

    // A middle entry deleted.
    tamper(&h, "DELETE FROM audit_log WHERE seq = 2").await;
    let gap = run(h.cmd(), &["audit", "verify"]);
    assert_eq!(gap.status.code(), Some(1));
    assert!(
        stdout(&gap).contains("entries 2..=2 are missing"),
        "{}",
        describe(&gap)
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_with_another_audit_key_refuses_to_write_and_verify_needs_the_key() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([Reply::text("hi")]);
    ok(h.anthropic(&fake), &["run", "hello"]);
    let key_file = h.path().join("audit.key");
    let original = std::fs::read_to_string(&key_file).unwrap();
    // A log with entries, then another key in this home.
    fake.push([
        Reply::tool("list_dir", json!({"path": "."})),
        Reply::text("ok"),
    ]);
    ok(h.anthropic(&fake), &["run", "look"]);
    std::fs::write(&key_file, "b".repeat(64)).unwrap();
    let out = run(h.anthropic(&fake), &["run", "again"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("sealed by audit key"),
        "{}",
        describe(&out)
    );
    let v = run(h.cmd(), &["audit", "verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        stdout(&v).contains("was sealed by audit key"),
        "{}",
        describe(&v)
    );
    // Without the key file, verify says where it should be.
    std::fs::remove_file(&key_file).unwrap();
    let v = run(h.cmd(), &["audit", "verify"]);
    assert_eq!(v.status.code(), Some(2));
    assert!(stderr(&v).contains("no audit key at"), "{}", describe(&v));
    std::fs::write(&key_file, original).unwrap();
    // Put back loose, it is refused; private, it verifies again.
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let v = run(h.cmd(), &["audit", "verify"]);
    assert!(stderr(&v).contains("chmod 600"), "{}", describe(&v));
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    ok(h.cmd(), &["audit", "verify"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_refused_requests_is_recorded_within_a_budget() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let first_second = wall();
    for _ in 0..300 {
        assert_eq!(cross_site_post(&api, "/v1/chat/completions").await, 403);
    }
    // The budget is per wall-clock second: count the seconds touched.
    let secs = (wall() - first_second) as usize + 1;
    let refused: Vec<Value> = entries(&h)
        .into_iter()
        .filter(|e| e["event"]["kind"] == "refused")
        .collect();
    assert!(!refused.is_empty());
    assert!(
        refused.len() <= 20 * secs && refused.len() < 300,
        "{} refusals recorded in {secs}s",
        refused.len()
    );
    assert_eq!(refused[0]["event"]["action"], "POST /v1/chat/completions");
    assert_eq!(refused[0]["event"]["surface"], "openai");
    drop(server);
}
