//! Schedules through the binary and the API: `cairn schedule …` edits them
//! (with clear errors), `cairn serve` fires a due one exactly once and the
//! run it starts completes; the record says what happened.

use std::time::{Duration, Instant};

use chrono::Timelike;

use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

use crate::api::{Api, start};
use crate::*;

/// Waits for a schedule's first fire record.
async fn first_fire(
    api: &Api,
    id: &str,
    server: &cairn_testkit::ServerProcess,
) -> serde_json::Value {
    let start_wait = Instant::now();
    loop {
        let (_, fires) = api.get(&format!("/api/v1/schedules/{id}/fires")).await;
        if let Some(f) = fires.as_array().and_then(|a| a.first()).cloned() {
            return f;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "never fired; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_schedule_command_adds_lists_pauses_resumes_and_removes() {
    let h = home();
    // Half a day from now (Paris is UTC+1 or +2): never due before the
    // 15-minute interval below, whatever time the test runs.
    let hour = (chrono::Utc::now().hour() + 12) % 24;
    let cron = format!("0 {hour} * * 1-5");
    let out = ok(
        h.cmd(),
        &[
            "schedule",
            "add",
            "--cron",
            &cron,
            "--tz",
            "Europe/Paris",
            "Summarize my inbox.",
        ],
    );
    assert!(stdout(&out).starts_with("added sch_"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("no scheduler is running"),
        "says nothing would fire it: {}",
        stderr(&out)
    );
    ok(
        h.cmd(),
        &["schedule", "add", "--every", "15m", "Check the build."],
    );
    let status = json(&h, &["status"]);
    assert_eq!(status["schedules"]["active"], 2, "{status}");
    assert!(status["schedules"]["next_due"].as_i64().is_some());
    assert!(stdout(&ok(h.cmd(), &["status"])).contains("Check the build."));
    let list = json(&h, &["schedule", "list"]);
    let all = list.as_array().unwrap();
    assert_eq!(all.len(), 2);
    // Soonest first: the interval is due within 15 minutes.
    assert_eq!(all[0]["spec"], "15m");
    assert_eq!(all[1]["tz"], "Europe/Paris");
    assert_eq!(all[1]["catch_up"], "once");
    let id = all[1]["id"].as_str().unwrap().to_string();
    // `hour`:00 in Paris is an hour (winter) or two (summer) earlier in UTC.
    let next = all[1]["next_due"].as_i64().unwrap();
    let utc_seconds = (next / 1000) % 86_400;
    let paris_offsets = [1, 2].map(|h| ((hour as i64 + 24 - h) % 24) * 3600);
    assert!(paris_offsets.contains(&utc_seconds), "{}", all[1]);

    ok(h.cmd(), &["schedule", "pause", &id[..22]]);
    assert_eq!(json(&h, &["schedule", "list"])[1]["paused"], true);
    let resumed = ok(h.cmd(), &["schedule", "resume", &id]);
    assert!(stdout(&resumed).contains("next "), "{}", stdout(&resumed));
    ok(h.cmd(), &["schedule", "remove", &id]);
    assert_eq!(json(&h, &["schedule", "list"]).as_array().unwrap().len(), 1);

    // Bad input: exit 2 and a message that says what is expected.
    for (args, expect) in [
        (vec!["--cron", "61 * * * *"], "five fields"),
        (vec!["--cron", "0 8 * * *", "--tz", "Mars/Olympus"], "IANA"),
        (vec!["--every", "5x"], "90s"),
        (
            vec!["--at", "2001-01-01T00:00:00Z"],
            "no occurrence in the future",
        ),
        (vec![], "one of --cron"),
        (vec!["--every", "1h", "--catch-up", "maybe"], "once"),
        (vec!["--every", "1h", "--agent", "nobody"], "no agent named"),
    ] {
        let mut all = vec!["schedule", "add"];
        all.extend(args.iter());
        all.push("do it");
        let out = run(h.cmd(), &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
    let both = run(
        h.cmd(),
        &[
            "schedule",
            "add",
            "--every",
            "1h",
            "--cron",
            "* * * * *",
            "x",
        ],
    );
    assert_eq!(both.status.code(), Some(2));
    let missing = run(h.cmd(), &["schedule", "pause", "sch_nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("not found") || stderr(&missing).contains("no schedule"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_fires_a_due_schedule_once_and_its_run_completes() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([Reply::text("Good morning! Three meetings today.")]);
    let server = start(&h, &fake);
    let api = Api::new(&server);

    // Bad input is refused with 4xx and nothing is stored.
    let (status, body) = api
        .post(
            "/api/v1/schedules",
            json!({"agent": "default", "prompt": "x", "kind": "cron", "spec": "not cron"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = api
        .post(
            "/api/v1/schedules",
            json!({"agent": "ghost", "prompt": "x", "kind": "every", "spec": "1h"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .post(
            "/api/v1/schedules",
            json!({"agent": "default", "prompt": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(api.get("/api/v1/schedules").await.1, json!([]));

    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (status, s) = api
        .post(
            "/api/v1/schedules",
            json!({"agent": "default", "prompt": "Morning briefing, please.", "kind": "at",
                   "spec": at.to_rfc3339(), "session_id": "mornings"}),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_string();

    let fire = first_fire(&api, &id, &server).await;
    assert_eq!(fire["outcome"], "fired");
    assert!(fire["reason"].is_null(), "on time: {fire}");
    let run_id = fire["run_id"].as_str().unwrap();
    let detail = api.wait_run(run_id, Duration::from_secs(20)).await;
    assert_eq!(detail["run"]["status"], "completed");
    assert_eq!(
        detail["run"]["output"],
        "Good morning! Three meetings today."
    );
    assert_eq!(detail["run"]["session_id"], "mornings");

    // Fired once: a one-shot is done, and no second run appears.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, s) = api.get(&format!("/api/v1/schedules/{id}")).await;
    assert!(s["next_due"].is_null(), "{s}");
    let (_, fires) = api.get(&format!("/api/v1/schedules/{id}/fires")).await;
    assert_eq!(fires.as_array().unwrap().len(), 1);
    assert_eq!(fake.requests().len(), 1);

    // The CLI reads the same record (the server is running: no warning).
    let runs = json(&h, &["schedule", "runs"]);
    assert_eq!(runs[0]["run_id"], run_id);
    let out = ok(h.cmd(), &["schedule", "add", "--every", "1h", "later"]);
    assert!(!stderr(&out).contains("no scheduler"), "{}", stderr(&out));

    let (status, _) = api
        .http
        .delete(format!("{}/api/v1/schedules/{id}", api.url))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    assert_eq!(api.get(&format!("/api/v1/schedules/{id}")).await.0, 404);
}

#[test]
fn an_agent_cannot_schedule_when_no_scheduler_runs() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([
        Reply::tool(
            "schedule_create",
            json!({"prompt": "Remind the user to call the bank.", "every": "1d"}),
        ),
        Reply::text("I could not set the reminder."),
    ]);
    let out = ok(
        h.anthropic(&fake),
        &["run", "remind me daily to call the bank"],
    );
    assert!(stdout(&out).contains("could not set"), "{}", describe(&out));
    let told = fake.requests()[1].message_texts().join("\n");
    assert!(
        told.contains("NOT scheduled: no scheduler is running"),
        "{told}"
    );
    assert_eq!(json(&h, &["schedule", "list"]), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_schedules_a_reminder_that_fires_in_its_session() {
    let h = home();
    let fake = FakeLlm::start();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    api.session("chat").await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    fake.push([
        Reply::tool(
            "schedule_create",
            json!({"prompt": "Remind the user to call the bank.", "at": at}),
        ),
        Reply::text("Done: I will remind you."),
        Reply::text("Reminder: call the bank."),
    ]);
    let events = api
        .post_sse("chat", "remind me in two seconds to call the bank")
        .await;
    let run = &events.last().unwrap().1["run"];
    assert_eq!(run["status"], "completed", "{events:?}");
    let told = fake.requests()[1].message_texts().join("\n");
    assert!(told.contains("scheduled sch_"), "{told}");

    let (_, all) = api.get("/api/v1/schedules").await;
    let s = &all.as_array().unwrap()[0];
    assert_eq!(s["session_id"], "chat");
    assert!(s["created_by"].as_str().unwrap().starts_with("agent:run_"));
    let id = s["id"].as_str().unwrap();
    let fire = first_fire(&api, id, &server).await;
    let detail = api
        .wait_run(fire["run_id"].as_str().unwrap(), Duration::from_secs(20))
        .await;
    assert_eq!(detail["run"]["output"], "Reminder: call the bank.");
    assert_eq!(detail["run"]["session_id"], "chat");
    // It ran in the conversation: the model saw the earlier turn.
    let last = fake.requests().last().unwrap().message_texts().join("\n");
    assert!(last.contains("remind me in two seconds"), "{last}");
    assert!(last.contains("Remind the user to call the bank."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_and_heartbeats_declared_in_the_config_follow_the_file() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([Reply::text("pong")]);
    let config = h.path().join("cairn.toml");
    std::fs::write(
        &config,
        r#"
[schedules.ping]
prompt = "ping"
every = "2s"
session = "pings"

[agents.default.heartbeat]
every = "1h"
quiet_hours = "23:00-06:00"
tz = "Europe/Paris"
max_daily_usd = 0.02
"#,
    )
    .unwrap();
    let mut server = start(&h, &fake);
    let api = Api::new(&server);
    let (_, all) = api.get("/api/v1/schedules").await;
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"sch_cfg-ping"), "{all}");
    assert!(ids.contains(&"sch_heartbeat-default"), "{all}");
    let (_, beat) = api.get("/api/v1/schedules/sch_heartbeat-default").await;
    assert_eq!(beat["heartbeat"]["max_daily_usd"], 0.02);
    assert_eq!(beat["heartbeat"]["quiet_hours"], "23:00-06:00");
    assert_eq!(beat["catch_up"], "skip");

    let fire = first_fire(&api, "sch_cfg-ping", &server).await;
    let detail = api
        .wait_run(fire["run_id"].as_str().unwrap(), Duration::from_secs(20))
        .await;
    assert_eq!(detail["run"]["output"], "pong");
    assert_eq!(server.terminate(Duration::from_secs(20)), Some(0));

    // Removed from the file: removed from the store at the next start.
    std::fs::write(&config, "").unwrap();
    let server = start(&h, &fake);
    let api = Api::new(&server);
    assert_eq!(api.get("/api/v1/schedules").await.1, json!([]));
    drop(server);

    // A bad declaration stops the server with the entry named.
    std::fs::write(
        &config,
        "[schedules.bad]\nprompt = \"x\"\ncron = \"99 * * * *\"\n",
    )
    .unwrap();
    let out = run(h.anthropic(&fake), &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("[schedules.bad]"), "{}", stderr(&out));
}
