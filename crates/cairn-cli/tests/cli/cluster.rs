//! The cluster's front door, end to end with real processes: a coordinator
//! (`cairn serve --role coordinator`, TLS from `cairn cluster init`), a
//! worker that joins with a one-time token and dials out over mTLS
//! WebSocket, and every way in that must be refused — a replayed, expired,
//! forged or malformed token, a certificate from another CA, labels that
//! were not issued, a revoked node, no certificate at all.

use std::time::Duration;

use cairn_testkit::{CairnHome, LoggedProcess, ServerProcess, TestDatabase};
use serde_json::Value;

use crate::*;

/// A coordinator home (CA made, 1 s heartbeats) and its server.
pub fn coordinator(db: Option<&str>) -> (CairnHome, ServerProcess) {
    let h = home();
    let server = coordinator_in(&h, db, "", h.cmd());
    (h, server)
}

/// A coordinator in `h` with more config, started from `cmd`.
pub fn coordinator_in(
    h: &CairnHome,
    db: Option<&str>,
    config: &str,
    mut cmd: std::process::Command,
) -> ServerProcess {
    // A worker is dropped after four silent beats: 1 s beats give 4 s, which
    // a process on a loaded 2-core machine running the whole suite keeps
    // (200 ms beats lost healthy workers there).
    h.write_config(&format!("[cluster]\nheartbeat_ms = 1000\n{config}"));
    if !h.path().join("cluster").exists() {
        ok(h.cmd(), &["cluster", "init"]);
    }
    with_db(&mut cmd, db);
    let server = ServerProcess::start_with(cmd, &["--role", "coordinator"]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    server
}

/// A join token from `cairn cluster join-token`.
pub fn join_token(h: &CairnHome, db: Option<&str>, labels: &str, ttl: &str) -> String {
    let mut cmd = h.cmd();
    with_db(&mut cmd, db);
    let out = ok(
        cmd,
        &["cluster", "join-token", "--labels", labels, "--ttl", ttl],
    );
    stdout(&out).trim().to_string()
}

/// `cairn worker` in `w`'s home with `args`.
pub fn worker(w: &CairnHome, args: &[&str]) -> LoggedProcess {
    let mut cmd = w.cmd();
    cmd.arg("worker").args(args);
    LoggedProcess::spawn(cmd)
}

/// A worker that joined `server` with `token` and is connected.
pub fn joined_worker(
    w: &CairnHome,
    server: &ServerProcess,
    token: &str,
    name: &str,
) -> LoggedProcess {
    // As the README says to: the token in a file, not on the command line.
    let file = w.path().join("join.token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let p = worker(
        w,
        &[
            "--join",
            &server.url,
            "--token-file",
            file.to_str().unwrap(),
            "--name",
            name,
        ],
    );
    p.wait_for("connected to", Duration::from_secs(20));
    p
}

pub fn nodes(h: &CairnHome, db: Option<&str>) -> Vec<Value> {
    let mut cmd = h.cmd();
    with_db(&mut cmd, db);
    let out = ok(cmd, &["cluster", "nodes", "--json"]);
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn exits_refused(p: &mut LoggedProcess, needle: &str) {
    let code = p.wait_exit(Duration::from_secs(20));
    assert!(
        code.is_some_and(|c| c != 0),
        "the worker must stop with an error, got {code:?}:\n{}",
        p.log()
    );
    assert!(p.log().contains(needle), "{needle:?} in:\n{}", p.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_joins_over_mtls_is_listed_and_its_token_cannot_be_replayed() {
    let db = TestDatabase::create().await;
    let (h, server) = coordinator(Some(db.url()));
    let token = join_token(&h, Some(db.url()), "region=eu,cap=browser", "10m");
    let w = home();
    let _worker = joined_worker(&w, &server, &token, "eu-1");

    let listed = nodes(&h, Some(db.url()));
    assert_eq!(listed.len(), 1, "{listed:?}");
    let node = &listed[0];
    assert_eq!(node["name"], "eu-1");
    assert_eq!(
        node["labels"],
        serde_json::json!({"cap": "browser", "region": "eu"})
    );
    assert_eq!(node["slots"], 4);
    assert!(node["coordinator"].is_string(), "{node}");
    // The key never left the worker; the certificate names the node.
    let dir = w.path().join("worker");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("node.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o077, 0, "the node key is private");
    let mut cmd = h.cmd();
    with_db(&mut cmd, Some(db.url()));
    let table = stdout(&ok(cmd, &["cluster", "nodes"]));
    assert!(table.contains("eu-1") && table.contains(" up "), "{table}");

    // The same token again, from another host: refused, and logged.
    let thief = home();
    let mut replay = worker(&thief, &["--join", &server.url, "--token", &token]);
    exits_refused(&mut replay, "join token refused");
    assert!(server.log().contains("join refused"), "{}", server.log());
    assert_eq!(nodes(&h, Some(db.url())).len(), 1);
}

/// Points `cmd` at database `db` (none: the home's SQLite file).
pub fn with_db(cmd: &mut std::process::Command, db: Option<&str>) {
    if let Some(url) = db {
        cmd.args(["--database", url]);
    }
}

#[test]
fn malformed_forged_and_expired_tokens_are_refused() {
    let (h, server) = coordinator(None);
    let w = home();
    let mut junk = worker(&w, &["--join", &server.url, "--token", "hello"]);
    exits_refused(&mut junk, "not a cairn join token");

    // Right id, wrong secret.
    let token = join_token(&h, None, "", "10m");
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[2] = "0".repeat(64);
    let forged = parts.join(".");
    let mut p = worker(&w, &["--join", &server.url, "--token", &forged]);
    exits_refused(&mut p, "join token refused");

    let short = join_token(&h, None, "", "1s");
    std::thread::sleep(Duration::from_millis(1_200));
    let mut p = worker(&w, &["--join", &server.url, "--token", &short]);
    exits_refused(&mut p, "join token refused");
    let log = server.log();
    assert!(log.contains("Unknown") && log.contains("Expired"), "{log}");
    assert!(nodes(&h, None).is_empty());
    // The forged token's real secret still works: a refusal spends nothing.
    let _ok = joined_worker(&w, &server, &token, "w");
}

#[test]
fn a_token_for_another_cluster_is_refused_before_anything_is_sent() {
    let (_h, server) = coordinator(None);
    let other = home();
    ok(other.cmd(), &["cluster", "init"]);
    let token = join_token(&other, None, "", "10m");
    let w = home();
    let mut p = worker(&w, &["--join", &server.url, "--token", &token]);
    exits_refused(&mut p, "not from the cluster CA the token names");
    assert!(
        !server.log().contains("join refused"),
        "nothing reached the join endpoint"
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let (h, server) = coordinator(None);
    let w = home();
    let token = join_token(&h, None, "", "10m");
    let mut first = joined_worker(&w, &server, &token, "w");
    first.kill9();
    // Same node files, but the key and certificate come from a CA of its
    // own making: the coordinator's TLS refuses the handshake.
    let rogue = tempfile::tempdir().unwrap();
    let rogue_ca = cairn_cluster::CaDir(rogue.path().join("ca"));
    rogue_ca.init(&["localhost".into()]).unwrap();
    let (key, csr) = cairn_cluster::pki::node_request().unwrap();
    let (cert, _) = rogue_ca
        .issue_node_cert(&csr, "node_rogue", &Default::default())
        .unwrap();
    let dir = w.path().join("worker");
    std::fs::write(dir.join("node.key"), key).unwrap();
    std::fs::write(dir.join("node.pem"), cert).unwrap();
    let mut p = worker(&w, &[]);
    exits_refused(&mut p, "certificate");
    assert!(
        server.log().contains("TLS handshake refused"),
        "{}",
        server.log()
    );
}

#[test]
fn a_worker_claiming_labels_it_was_not_issued_is_refused() {
    let (h, server) = coordinator(None);
    let w = home();
    let token = join_token(&h, None, "region=eu", "10m");
    let mut first = joined_worker(&w, &server, &token, "w");
    first.kill9();
    let path = w.path().join("worker").join("node.json");
    let mut identity: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    identity["labels"]["cap"] = "gpu".into();
    std::fs::write(&path, identity.to_string()).unwrap();
    let mut p = worker(&w, &[]);
    exits_refused(&mut p, "were not issued to this node");
    assert!(
        server.log().contains("claimed labels it was not issued"),
        "{}",
        server.log()
    );
}

#[test]
fn a_revoked_node_is_cut_off_and_cannot_come_back() {
    let (h, server) = coordinator(None);
    let w = home();
    let token = join_token(&h, None, "", "10m");
    let mut p = joined_worker(&w, &server, &token, "doomed");
    let out = ok(h.cmd(), &["cluster", "revoke", "doomed"]);
    assert!(stdout(&out).contains("revoked"), "{}", stdout(&out));
    exits_refused(&mut p, "revoked");
    let listed = nodes(&h, None);
    assert!(listed[0]["revoked_at"].is_i64(), "{listed:?}");
    let unknown = run(h.cmd(), &["cluster", "revoke", "nobody"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no node"), "{}", stderr(&unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_endpoint_requires_a_node_certificate() {
    let (h, server) = coordinator(None);
    // The tests' HTTP clients need a crypto provider, as cairn installs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = cairn_cluster::CaDir(h.path().join("cluster"));
    let tls = cairn_cluster::tls::pinned_client_config(&ca.ca_fingerprint().unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}/cluster/v1/connect", server.url))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("node certificate"),
        "{body}"
    );
    // Plain HTTP to a TLS port gets nothing useful.
    let plain = reqwest::Client::new()
        .get(server.url.replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // Junk at the join endpoint: refused with 400 or 413, nothing joins.
    let join = format!("{}/cluster/v1/join", server.url);
    let form = client
        .post(&join)
        .header("content-type", "text/plain")
        .body("{\"token_id\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 400, "a cross-site form post is not JSON");
    let bad_json = client
        .post(&join)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    let bad_csr = client
        .post(&join)
        .json(&serde_json::json!({"token_id": "x", "secret": "y", "name": "n", "csr": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_csr.status(), 400);
    // The server answers 413 as soon as the body passes its limit and may
    // close the connection while the client still writes: a reset is a
    // refusal too. Either way nothing joins, and the next requests show
    // the server still serving.
    let huge = client
        .post(&join)
        .header("content-type", "application/json")
        .body(format!("{{\"csr\": \"{}\"}}", "A".repeat(8 << 20)))
        .send()
        .await;
    match huge {
        Ok(r) => assert!(matches!(r.status().as_u16(), 400 | 413), "{}", r.status()),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
    let bad_name = client
        .post(&join)
        .json(&serde_json::json!({"token_id": "x", "secret": "y", "name": "../../etc", "csr": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_name.status(), 400);
    assert!(nodes(&h, None).is_empty());
    // The API still answers over TLS.
    let health = client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
}

#[test]
fn cluster_commands_explain_what_is_missing() {
    let h = home();
    let out = run(h.cmd(), &["cluster", "join-token"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cairn cluster init"),
        "{}",
        stderr(&out)
    );
    let out = run(h.cmd(), &["serve", "--role", "coordinator"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cairn cluster init"),
        "{}",
        stderr(&out)
    );
    ok(h.cmd(), &["cluster", "init"]);
    let again = run(h.cmd(), &["cluster", "init"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    for (labels, ttl) in [("region", "1h"), ("a=b", "soon")] {
        let out = run(
            h.cmd(),
            &["cluster", "join-token", "--labels", labels, "--ttl", ttl],
        );
        assert!(!out.status.success(), "{labels} {ttl}");
    }
    let w = home();
    let out = run(w.cmd(), &["worker"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("has not joined"), "{}", stderr(&out));
}

/// The node id a worker home joined as.
pub fn node_id(w: &CairnHome) -> String {
    let text = std::fs::read_to_string(w.path().join("worker").join("node.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["node_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Copies a flat directory (the cluster CA to a second coordinator's home).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
