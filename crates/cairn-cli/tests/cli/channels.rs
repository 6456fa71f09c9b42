//! Channels end to end: `cairn serve` against fakes of Telegram and Slack
//! that speak their real HTTP APIs, and signed webhooks. Inbound messages
//! are committed before they are acknowledged and de-duplicated; strangers
//! get a refusal and no run; replies are split, escaped, retried through
//! rate limits and restarts; forged requests get 401 and store nothing.

use std::time::{Duration, Instant};

use cairn_testkit::{
    Failure, FakeLlm, FakeSlack, FakeTelegram, Reply, ServerProcess, hmac_hex, slack_signature,
    webhook_signature,
};
use serde_json::{Value, json};

use crate::api::Api;
use crate::*;

/// A Telegram channel on the fake, anyone allowed, polling each second.
fn telegram_open_to_all(tg: &FakeTelegram, before: &str) -> String {
    format!(
        "{before}[channels.telegram]\ntoken = \"T\"\napi_url = \"{}\"\nallow = [\"*\"]\npoll_timeout_s = 1\n",
        tg.url()
    )
}

fn write_config(h: &cairn_testkit::CairnHome, text: &str) {
    h.write_config(text);
}

#[test]
fn telegram_long_polling_answers_allowed_people_once_and_refuses_strangers() {
    let h = home();
    let fake = FakeLlm::start();
    let tg = FakeTelegram::start("123:ABC");
    write_config(
        &h,
        &format!(
            "[channels.telegram]\ntoken = \"123:ABC\"\napi_url = \"{}\"\nallow = [\"42\", \"@carol\"]\npoll_timeout_s = 1\n",
            tg.url()
        ),
    );
    // A long answer with characters MarkdownV2 reserves.
    let long: String = (0..300).map(|i| format!("Item {i}: done (ok). ")).collect();
    fake.push([Reply::text(&long), Reply::text("Hi Carol!")]);
    // The first delivery attempt is rate limited.
    tg.fail_sends([Failure {
        status: 429,
        retry_after: Some(1),
    }]);
    // A webhook left from another setup would make polling fail (409).
    tg.preset_webhook("https://old.example.com/hook");
    let server = ServerProcess::start(h.anthropic(&fake));

    let first = tg.user_says(7001, 42, "alice", "give me the full report");
    tg.user_says(7002, 99, "mallory", "let me in");
    wait_until("the answer in two parts", Duration::from_secs(20), || {
        tg.sent().iter().filter(|m| m["chat_id"] == "7001").count() >= 2
    });
    let parts: Vec<Value> = tg
        .sent()
        .into_iter()
        .filter(|m| m["chat_id"] == "7001")
        .collect();
    assert_eq!(parts.len(), 2, "split at Telegram's 4096 characters");
    assert!(long.len() > 4096);
    assert!(parts.iter().all(|p| p["parse_mode"] == "MarkdownV2"));
    let unescaped: String = parts
        .iter()
        .map(|p| p["text"].as_str().unwrap().replace('\\', ""))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        unescaped.split_whitespace().eq(long.split_whitespace()),
        "nothing lost or changed"
    );
    wait_until("the refusal", Duration::from_secs(10), || {
        tg.sent().iter().any(|m| m["chat_id"] == "7002")
    });
    let refusal = tg
        .sent()
        .into_iter()
        .find(|m| m["chat_id"] == "7002")
        .unwrap();
    assert!(
        refusal["text"]
            .as_str()
            .unwrap()
            .contains("only talk to people I know")
    );

    // The same update delivered again: no second run.
    tg.redeliver(&first);
    tg.user_says(7003, 5, "carol", "hello");
    wait_until("carol's answer", Duration::from_secs(10), || {
        tg.sent().iter().any(|m| m["chat_id"] == "7003")
    });
    assert_eq!(
        fake.requests().len(),
        2,
        "one model call each for alice and carol"
    );
    // Offsets only moved forward, past committed updates.
    let offsets = tg.offsets();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");

    let api = Api::new(&server);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, runs) = rt.block_on(api.get("/api/v1/runs"));
    let sessions: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session_id"].as_str().unwrap())
        .collect();
    assert!(sessions.contains(&"telegram-7001"), "{sessions:?}");
    assert_eq!(sessions.len(), 2);
}

#[test]
fn replies_wait_in_the_outbox_across_a_crash_and_are_delivered_after() {
    let h = home();
    let fake = FakeLlm::start();
    let tg = FakeTelegram::start("T");
    write_config(&h, &telegram_open_to_all(&tg, ""));
    fake.push([Reply::text("Your answer.")]);
    // Telegram is down for now.
    tg.fail_sends((0..50).map(|_| Failure {
        status: 502,
        retry_after: None,
    }));
    let mut server = ServerProcess::start(h.anthropic(&fake));
    tg.user_says(10, 10, "dan", "question");
    wait_until("a failed delivery attempt", Duration::from_secs(20), || {
        let out = json(&h, &["channels", "outbox"]);
        out.as_array()
            .is_some_and(|a| a.iter().any(|o| o["attempts"].as_i64().unwrap_or(0) >= 1))
    });
    server.kill9();
    assert!(tg.sent().is_empty());

    // Back up, a new process: the reply is still owed and goes out.
    let tg_ok = FakeTelegram::start("T");
    write_config(&h, &telegram_open_to_all(&tg_ok, ""));
    let _server = ServerProcess::start(h.anthropic(&fake));
    wait_until(
        "the delivery after restart",
        Duration::from_secs(60),
        || !tg_ok.sent().is_empty(),
    );
    assert_eq!(tg_ok.sent()[0]["text"], "Your answer\\.");
    assert_eq!(fake.requests().len(), 1, "the run was not repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_webhooks_need_the_secret_token() {
    let h = home();
    let fake = FakeLlm::start();
    let tg = FakeTelegram::start("T");
    write_config(
        &h,
        &format!(
            "[channels.telegram]\ntoken = \"T\"\napi_url = \"{}\"\nmode = \"webhook\"\nwebhook_secret = \"s3cret\"\nwebhook_url = \"https://bot.example.com/channels/telegram/webhook\"\nallow = [\"*\"]\n",
            tg.url()
        ),
    );
    fake.push([Reply::text("pong")]);
    let server = ServerProcess::start(h.anthropic(&fake));
    let api = Api::new(&server);
    // Registered with Telegram at start, with the secret token.
    let start = Instant::now();
    while tg.webhook().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tg.webhook().unwrap()["secret_token"], "s3cret");
    let update = json!({"update_id": 1, "message": {"message_id": 5, "date": 1, "text": "ping",
        "from": {"id": 3, "is_bot": false, "first_name": "E"}, "chat": {"id": 3, "type": "private"}}});
    let post = |secret: Option<&str>| {
        let mut r = api
            .http
            .post(format!("{}/channels/telegram/webhook", api.url))
            .json(&update);
        if let Some(s) = secret {
            r = r.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("guess")).await.unwrap().status(), 401);
    assert_eq!(fake.requests().len(), 0, "a forged update runs nothing");
    assert_eq!(post(Some("s3cret")).await.unwrap().status(), 200);
    assert_eq!(
        post(Some("s3cret")).await.unwrap().status(),
        200,
        "redelivery"
    );
    let start = Instant::now();
    while tg.sent().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tg.sent()[0]["text"], "pong");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_events_are_verified_answered_in_thread_and_retried_through_rate_limits() {
    let h = home();
    let fake = FakeLlm::start();
    let slack = FakeSlack::start("xoxb-1");
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    write_config(
        &h,
        &format!(
            "[channels.slack]\nbot_token = \"xoxb-1\"\nsigning_secret = \"{secret}\"\napi_url = \"{}\"\nallow = [\"U1\"]\n",
            slack.url()
        ),
    );
    fake.push([Reply::text("Deployed *v2*.")]);
    slack.fail_posts([Failure {
        status: 429,
        retry_after: Some(1),
    }]);
    let server = ServerProcess::start(h.anthropic(&fake));
    let api = Api::new(&server);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let send = |body: String, ts: i64, sig: Option<String>| {
        let (ts_h, good) = slack_signature(secret, ts, &body);
        api.http
            .post(format!("{}/channels/slack/events", api.url))
            .header("content-type", "application/json")
            .header("X-Slack-Request-Timestamp", ts_h)
            .header("X-Slack-Signature", sig.unwrap_or(good))
            .body(body)
            .send()
    };

    // The URL verification handshake.
    let challenge = json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}).to_string();
    let r = send(challenge, now(), None).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let event = json!({"type": "event_callback", "event_id": "Ev1", "event_time": now(),
        "event": {"type": "message", "channel": "C9", "channel_type": "channel", "user": "U1",
                  "text": "deploy v2 please", "ts": "1764000000.000100"}})
    .to_string();
    // Forged and stale signatures: 401, nothing stored, no run.
    let forged = format!("v0={}", hmac_hex(b"not-the-secret", event.as_bytes()));
    assert_eq!(
        send(event.clone(), now(), Some(forged))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(event.clone(), now() - 600, None)
            .await
            .unwrap()
            .status(),
        401
    );
    // A timestamp chosen to overflow arithmetic: refused, no crash.
    assert_eq!(
        send(event.clone(), i64::MIN, None).await.unwrap().status(),
        401
    );
    assert_eq!(fake.requests().len(), 0);

    assert_eq!(
        send(event.clone(), now(), None).await.unwrap().status(),
        200
    );
    // Slack retries a delivery it thinks failed: same message, no new run.
    assert_eq!(
        send(event.clone(), now(), None).await.unwrap().status(),
        200
    );
    // A bot's own message is ignored.
    let bot = json!({"type": "event_callback", "event_id": "Ev2",
        "event": {"type": "message", "channel": "C9", "bot_id": "B1", "text": "Deployed", "ts": "1764000001.000200"}})
    .to_string();
    assert_eq!(send(bot, now(), None).await.unwrap().status(), 200);

    let start = Instant::now();
    while slack.posted().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let posted = slack.posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0]["channel"], "C9");
    assert_eq!(
        posted[0]["thread_ts"], "1764000000.000100",
        "answered in the thread"
    );
    assert_eq!(posted[0]["text"], "Deployed *v2*.");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_start_runs_and_get_signed_replies() {
    let h = home();
    let fake = FakeLlm::start();
    // The receiving end of replies: records what it gets, fails once.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let sink = received.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reply_url = format!("http://{}/replies", listener.local_addr().unwrap());
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/replies",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let sig = headers["x-cairn-signature"].to_str().unwrap().to_string();
                let ts = headers["x-cairn-timestamp"].to_str().unwrap().to_string();
                sink.lock().unwrap().push((format!("{ts} {sig}"), body));
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    write_config(
        &h,
        &format!(
            "[channels.webhook.ops]\nsecret = \"whsec\"\nreply_url = \"{reply_url}\"\n[channels.users]\nbob = [\"webhook.ops:oncall\", \"telegram:42\"]\n"
        ),
    );
    fake.push([Reply::text("Disk is 40% full.")]);
    let server = ServerProcess::start(h.anthropic(&fake));
    let api = Api::new(&server);
    let body = json!({"id": "m-1", "chat": "pager", "user": "oncall", "text": "check the disk"})
        .to_string();
    let sign = |b: &str| webhook_signature("whsec", now(), b);
    let post = |(ts, sig): (String, String)| {
        api.http
            .post(format!("{}/channels/webhook/ops", api.url))
            .header("content-type", "application/json")
            .header("X-Cairn-Timestamp", ts)
            .header("X-Cairn-Signature", sig)
            .body(body.clone())
            .send()
    };
    assert_eq!(
        post((now().to_string(), "sha256=00".into()))
            .await
            .unwrap()
            .status(),
        401
    );
    // The old scheme (body only, no timestamp) is refused.
    let bodyonly = format!("sha256={}", hmac_hex(b"whsec", body.as_bytes()));
    assert_eq!(
        post((now().to_string(), bodyonly)).await.unwrap().status(),
        401
    );
    // A captured request replayed later than five minutes: refused, even
    // though its signature is right.
    let old = webhook_signature("whsec", now() - 301, &body);
    let r = post(old).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("5 minutes"));
    let future = webhook_signature("whsec", now() + 301, &body);
    assert_eq!(post(future).await.unwrap().status(), 401);
    let r = post(sign(&body)).await.unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["session_id"], "webhook.ops-pager");
    let again = post(sign(&body)).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);

    let start = Instant::now();
    while received.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ts_sig, reply) = received.lock().unwrap()[0].clone();
    let (ts, sig) = ts_sig.split_once(' ').unwrap();
    assert!((now() - ts.parse::<i64>().unwrap()).abs() < 60);
    assert_eq!(
        sig,
        webhook_signature("whsec", ts.parse().unwrap(), &reply).1,
        "the reply is signed with the shared secret over its timestamp"
    );
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["text"], "Disk is 40% full.");
    assert_eq!(reply["chat"], "pager");
    assert_eq!(reply["run_id"], v["run_id"]);
    // The sender is mapped to the cairn user the config names.
    let (_, session) = api.get("/api/v1/sessions/webhook.ops-pager").await;
    assert_eq!(session["user_id"], "bob", "{session}");
    assert_eq!(fake.requests().len(), 1);
}

fn rate_limited(seconds: u64) -> Reply {
    Reply::Error {
        status: 429,
        message: "This request would exceed your rate limit.".into(),
        headers: vec![("retry-after".into(), seconds.to_string())],
    }
}

#[test]
fn a_rate_limited_provider_is_a_cooldown_the_person_is_told_about() {
    let h = home();
    let fake = FakeLlm::start();
    let tg = FakeTelegram::start("T");
    write_config(
        &h,
        &telegram_open_to_all(&tg, "[llm]\nmax_retry_wait_s = 1\n"),
    );
    fake.push([rate_limited(3), Reply::text("Here it is.")]);
    let _server = ServerProcess::start(h.anthropic(&fake));
    tg.user_says(20, 20, "erin", "what is on today?");
    wait_until("the cooldown notice", Duration::from_secs(20), || {
        !tg.sent().is_empty()
    });
    let notice = tg.sent()[0]["text"].as_str().unwrap().to_string();
    assert!(notice.contains("rate\\-limited"), "{notice}");
    let status = json(&h, &["status"]);
    assert_eq!(
        status["cooling_down"][0]["provider"], "anthropic",
        "{status}"
    );
    assert!(
        status["cooling_down"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("rate limit")
    );
    // It resumes by itself once the cooldown ends: one more model call.
    wait_until("the answer", Duration::from_secs(30), || {
        tg.sent().len() >= 2
    });
    assert_eq!(tg.sent()[1]["text"], "Here it is\\.");
    assert_eq!(fake.requests().len(), 2, "no retry loop while cooling down");
}

#[test]
fn cairn_run_waits_out_a_cooldown_and_finishes() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([rate_limited(2), Reply::text("done")]);
    let mut cmd = h.anthropic(&fake);
    cmd.env("CAIRN_LLM__MAX_RETRY_WAIT_S", "1");
    let out = ok(cmd, &["run", "hello"]);
    assert!(stdout(&out).contains("done"), "{}", describe(&out));
    assert!(
        stderr(&out).contains("cooling down until"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn a_message_sent_while_the_agent_works_joins_the_running_turn() {
    let h = home();
    let fake = FakeLlm::start();
    let tg = FakeTelegram::start("T");
    write_config(&h, &telegram_open_to_all(&tg, ""));
    fake.push([
        Reply::tool(
            "exec",
            json!({"command": "touch started; sleep 2; echo built"}),
        ),
        Reply::text("Built it, and yes: staging too."),
    ]);
    let _server = ServerProcess::start(h.anthropic(&fake));
    tg.user_says(30, 30, "fay", "build the site");
    wait_until("the command to start", Duration::from_secs(20), || {
        h.workspace().join("started").exists()
    });
    tg.user_says(30, 30, "fay", "and deploy to staging too");
    wait_until("the reply", Duration::from_secs(30), || {
        !tg.sent().is_empty()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let sent = tg.sent();
    assert_eq!(sent.len(), 1, "one answer for both messages: {sent:?}");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "no second turn");
    let second = reqs[1].message_texts().join("\n");
    assert!(second.contains("built"), "{second}");
    assert!(second.contains("and deploy to staging too"), "{second}");
    let runs = json(&h, &["runs", "list"]);
    let joined = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["input"] == "and deploy to staging too")
        .unwrap();
    assert_eq!(joined["status"], "completed");
    assert!(
        joined["output"]
            .as_str()
            .unwrap()
            .contains("answered together")
    );
}

#[test]
fn misconfigured_channels_are_named_by_doctor_and_refused_by_serve() {
    let h = home();
    let fake = FakeLlm::start();
    write_config(
        &h,
        "[channels.telegram]\nmode = \"webhook\"\n[channels.webhook.ops]\nsecret = \"\"\n",
    );
    let out = run(h.anthropic(&fake), &["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = stdout(&out);
    for expected in [
        "[FAIL] channels.telegram: no bot token",
        "webhook mode needs webhook_secret",
        "[warn] channels.telegram: allow is empty",
        "[FAIL] channels.webhook.ops: no secret: set CAIRN_CHANNELS__WEBHOOK__OPS__SECRET",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let out = run(h.anthropic(&fake), &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("[channels.telegram] no bot token"),
        "{}",
        stderr(&out)
    );
}
