//! Planted secrets never reach a log line, a database row or a tool's
//! environment: not the provider key, not the Telegram token (it sits in
//! Telegram's URLs), not a key in a reply URL, not a stranger's words.

use std::time::{Duration, Instant};

use cairn_testkit::{FakeLlm, Reply, ServerProcess, webhook_signature};
use serde_json::json;

use crate::*;

const PROVIDER_KEY: &str = "sk-ant-PLANTED-provider-4c1d";
const TG_TOKEN: &str = "987654:PLANTED-telegram-9e2f";
const HOOK_KEY: &str = "PLANTED-hook-key-77aa";
const STRANGER_WORDS: &str = "PLANTED-stranger-words-0b3c";

fn now_s() -> i64 {
    cairn_core::now_ms() / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_planted_secret_reaches_a_log_a_row_or_a_tool() {
    let h = home();
    let fake = FakeLlm::start();
    // Port 9 (discard) refuses connections: every Telegram call and every
    // reply delivery fails at the transport, the errors that carry URLs.
    h.write_config(&format!(
        "[channels.telegram]\ntoken = \"{TG_TOKEN}\"\napi_url = \"http://127.0.0.1:9\"\nallow = [\"*\"]\npoll_timeout_s = 1\n\
         [channels.webhook.ops]\nsecret = \"whsec\"\nreply_url = \"http://127.0.0.1:9/hook?key={HOOK_KEY}\"\nallow = [\"alice\"]\n"
    ));
    fake.push([
        Reply::tool(
            "exec",
            json!({"command": "env; cat /proc/1/environ | tr '\\0' '\\n'"}),
        ),
        Reply::text("done"),
    ]);
    let mut cmd = h.anthropic(&fake);
    cmd.env("ANTHROPIC_API_KEY", PROVIDER_KEY)
        .env("RUST_LOG", "debug");
    let server = ServerProcess::start(cmd);
    let http = cairn_llm::http_client();
    let post = |body: String| {
        let (ts, sig) = webhook_signature("whsec", now_s(), &body);
        http.post(format!("{}/channels/webhook/ops", server.url))
            .header("content-type", "application/json")
            .header("x-cairn-timestamp", ts)
            .header("x-cairn-signature", sig)
            .body(body)
            .send()
    };
    let r = post(
        json!({"id": "1", "chat": "c", "user": "alice", "text": "show me the env"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let r = post(
        json!({"id": "2", "chat": "m", "user": "mallory", "text": STRANGER_WORDS}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    // Wait until both replies (alice's answer, mallory's refusal) have
    // failed to deliver at least once, and Telegram polling has failed.
    let start = Instant::now();
    loop {
        let out = json(&h, &["channels", "outbox"]);
        let failed = out
            .as_array()
            .map(|a| a.iter().filter(|o| !o["last_error"].is_null()).count())
            .unwrap_or(0);
        if failed >= 2 && server.log().contains("getUpdates failed") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{out}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tool_result = fake.requests()[1].message_texts().last().cloned().unwrap();
    assert!(tool_result.contains("PATH="), "{tool_result}");
    let mut db = std::fs::read(h.path().join("cairn.db")).unwrap();
    db.extend(std::fs::read(h.path().join("cairn.db-wal")).unwrap_or_default());
    let db = String::from_utf8_lossy(&db).into_owned();
    let log = server.log();
    for planted in [PROVIDER_KEY, TG_TOKEN, HOOK_KEY, STRANGER_WORDS] {
        assert!(!log.contains(planted), "{planted} in the log:\n{log}");
        assert!(!db.contains(planted), "{planted} in the database");
        assert!(
            !tool_result.contains(planted),
            "{planted} in the tool's environment"
        );
    }
    // The checks looked at real content: the reply and its error are there.
    assert!(db.contains("show me the env"));
    assert!(log.contains("127.0.0.1:9") || db.contains("127.0.0.1:9") || db.contains("error"));
}

/// `cmd args` started under umask 022, as most shells leave it.
fn under_umask_022(cmd: std::process::Command, args: &[&str]) -> std::process::Output {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("umask 022; exec \"$@\"")
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let out = sh.output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", describe(&out));
    out
}

#[test]
fn what_cairn_writes_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let h = home();
    let outside = tempfile::tempdir().unwrap();
    let db = outside.path().join("data").join("cairn.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let with_db = || {
        let mut c = h.cmd();
        c.env("CAIRN_STORE__DATABASE", &db);
        c
    };
    under_umask_022(with_db(), &["init"]);
    under_umask_022(with_db(), &["memory", "save", "the staging host is atlas"]);
    let export = outside.path().join("export");
    under_umask_022(with_db(), &["memory", "export", export.to_str().unwrap()]);
    let mut files = vec![db.clone(), h.path().join("operator.key")];
    for suffix in ["-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            files.push(p);
        }
    }
    for entry in walk(&export) {
        files.push(entry);
    }
    assert!(files.len() > 3, "{files:?}");
    for f in files {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        let private = if f.is_dir() {
            mode & 0o077 == 0
        } else {
            mode == 0o600
        };
        assert!(private, "{} is {mode:o}", f.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
