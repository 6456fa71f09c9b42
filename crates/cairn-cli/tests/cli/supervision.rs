//! Keeping an always-on server healthy: the watchdog cancels a run whose
//! tool hangs (and frees its session), readiness fails when the database
//! file is gone, `cairn serve` speaks systemd's notify protocol, and
//! `cairn service install` writes a unit that uses it.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use cairn_testkit::{FakeLlm, Reply, ServerProcess};
use serde_json::json;

use crate::api::{Api, start};
use crate::*;

/// A TCP server that accepts connections and never answers.
fn black_hole() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        if let Ok((s, _)) = listener.accept() {
            held.push(s);
            std::thread::sleep(Duration::from_secs(40));
        }
    });
    (url, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_cancels_a_run_whose_tool_hangs_and_frees_its_session() {
    let h = home();
    let fake = FakeLlm::start();
    let (url, _hole) = black_hole();
    fake.push([Reply::tool("http_fetch", json!({"url": url}))]);
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_SERVER__WATCHDOG_STUCK_S", "2")
        .env("CAIRN_TOOLS__HTTP_FETCH__ALLOW", "[\"127.0.0.1\"]")
        .env("CAIRN_AGENTS__DEFAULT__OWNER", "telegram:777");
    let server = ServerProcess::start(cmd);
    let api = Api::new(&server);
    api.session("s").await;
    let (status, body) = api
        .post(
            "/api/v1/sessions/s/messages",
            json!({"content": "fetch that page"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["id"].as_str().unwrap().to_string();
    let began = Instant::now();
    let detail = api.wait_run(&run_id, Duration::from_secs(25)).await;
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "stopped by the watchdog, not by the fetch's own 30 s timeout"
    );
    assert_eq!(detail["run"]["status"], "cancelled", "{detail}");
    // The reason is recorded once the run has stopped.
    let start_wait = Instant::now();
    loop {
        let (_, d) = api.get(&format!("/api/v1/runs/{run_id}")).await;
        if d["run"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("watchdog"))
        {
            break;
        }
        assert!(start_wait.elapsed() < Duration::from_secs(10), "{d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The owner is told (queued for their Telegram chat).
    let outbox = json(&h, &["channels", "outbox"]);
    let notice = outbox
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["chat_id"] == "777")
        .expect("a notice for the owner");
    assert!(
        notice["text"].as_str().unwrap().contains("watchdog"),
        "{notice}"
    );
    // The session is free: the next message runs at once.
    fake.push([Reply::text("back")]);
    let events = api.post_sse("s", "are you there?").await;
    assert_eq!(events.last().unwrap().1["run"]["output"], "back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_database_file_is_gone() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    assert_eq!(api.get("/readyz").await.0, 200);
    std::fs::rename(h.path().join("cairn.db"), h.path().join("moved.db")).unwrap();
    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("gone"), "{body}");
    assert_eq!(api.get("/healthz").await.0, 200, "alive, though not ready");
}

#[test]
fn serve_tells_systemd_it_is_ready_alive_and_stopping() {
    let h = home();
    let fake = FakeLlm::start();
    let sock_path = h.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut cmd = h.anthropic(&fake);
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000");
    let mut server = ServerProcess::start(cmd);
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while seen.iter().filter(|s: &&String| *s == "WATCHDOG=1").count() < 2 {
        let n = sock.recv(&mut buf).expect("a notification");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(seen[0], "READY=1", "{seen:?}");
    assert_eq!(server.terminate(Duration::from_secs(20)), Some(0));
    loop {
        let n = sock.recv(&mut buf).expect("STOPPING=1 before exit");
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
}

#[test]
fn service_install_writes_a_notify_unit_with_a_watchdog() {
    let h = home();
    let config_home = h.path().join("xdg");
    let mut cmd = h.cmd();
    cmd.env("XDG_CONFIG_HOME", &config_home);
    let out = ok(cmd, &["service", "install", "--user"]);
    let unit_path = config_home.join("systemd/user/cairn.service");
    assert!(
        stdout(&out).contains("systemctl --user daemon-reload"),
        "{}",
        stdout(&out)
    );
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "WatchdogSec=30",
        "WantedBy=default.target",
        &format!("Environment=CAIRN_HOME={}", h.path().display()),
        &format!("ExecStart={} serve", env!("CARGO_BIN_EXE_cairn")),
    ] {
        assert!(unit.lines().any(|l| l == line), "{line:?} missing:\n{unit}");
    }
    let mut again = h.cmd();
    again.env("XDG_CONFIG_HOME", &config_home);
    assert!(stdout(&ok(again, &["service", "install", "--user"])).contains("up to date"));
    let printed = ok(h.cmd(), &["service", "install", "--print"]);
    assert!(stdout(&printed).contains("WantedBy=multi-user.target"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_can_start_a_stuck_turn_again_once() {
    let h = home();
    let fake = FakeLlm::start();
    let (url, _hole) = black_hole();
    fake.push([
        Reply::tool("http_fetch", json!({"url": url})),
        Reply::text("second try worked"),
    ]);
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_SERVER__WATCHDOG_STUCK_S", "2")
        .env("CAIRN_TOOLS__HTTP_FETCH__ALLOW", "[\"127.0.0.1\"]")
        .env("CAIRN_SERVER__WATCHDOG_ACTION", "retry");
    let server = ServerProcess::start(cmd);
    let api = Api::new(&server);
    api.session("r").await;
    let (_, body) = api
        .post(
            "/api/v1/sessions/r/messages",
            json!({"content": "fetch it"}),
        )
        .await;
    let first = body["id"].as_str().unwrap().to_string();
    let start_wait = Instant::now();
    let retried = loop {
        let (_, d) = api.get(&format!("/api/v1/runs/{first}")).await;
        if let Some(e) = d["run"]["error"]
            .as_str()
            .filter(|e| e.contains("started again"))
        {
            break e.rsplit(' ').next().unwrap().to_string();
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "{d}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detail = api.wait_run(&retried, Duration::from_secs(20)).await;
    assert_eq!(detail["run"]["status"], "completed");
    assert_eq!(detail["run"]["output"], "second try worked");
    assert_eq!(detail["run"]["session_id"], "r");

    // A bad action is refused at start, naming the key.
    let mut bad = h.anthropic(&fake);
    bad.env("CAIRN_SERVER__WATCHDOG_ACTION", "reboot");
    let out = run(bad, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("watchdog_action"), "{}", stderr(&out));
}
