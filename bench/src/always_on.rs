//! The always-on assistant's figures: 10,000 schedules loaded with their
//! next fires computed; a channel message in → first byte of the reply out
//! (the fake LLM answering instantly, so the time is cairn's); an idle
//! `cairn serve` with two channels connected.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cairn_core::ids::new_id;
use cairn_core::now_ms;
use cairn_core::schedule::{CatchUp, NewSchedule, ScheduleKind, ScheduleRecord};
use cairn_store::Store;
use cairn_testkit::{FakeLlm, FakeTelegram, Reply, ServerProcess, webhook_signature};
use serde_json::json;

use crate::{median, percentile, vm_rss_kib};

/// Stores 10,000 schedules (cron in several zones, intervals, one-shots)
/// and times loading them all with the next fire of each computed, as a
/// scheduler does at start.
pub async fn schedules() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open_sqlite(&dir.path().join("cairn.db")).await?;
    let now = now_ms();
    let zones = [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Asia/Tokyo",
        "Australia/Sydney",
    ];
    // Varied expressions (1,440 distinct), as many users' schedules are.
    let crons = [
        "{m} {h} * * 1-5",
        "*/15 * * * *",
        "{m} {h} * * *",
        "0 0 1 * *",
        "{m} 9-17 * * *",
    ];
    for i in 0..10_000usize {
        let (kind, spec) = match i % 3 {
            0 => (
                ScheduleKind::Cron,
                crons[i % crons.len()]
                    .replace("{m}", &(i % 60).to_string())
                    .replace("{h}", &((i / 60) % 24).to_string()),
            ),
            1 => (ScheduleKind::Every, format!("{}m", 1 + i % 120)),
            _ => (
                ScheduleKind::At,
                chrono::DateTime::from_timestamp_millis(now + 3_600_000 + i as i64 * 1000)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
            ),
        };
        let new = NewSchedule {
            agent: "default".into(),
            session_id: None,
            prompt: format!("task {i}"),
            kind,
            spec,
            tz: Some(zones[i % zones.len()].into()),
            catch_up: CatchUp::Once,
        };
        store
            .create_schedule(&ScheduleRecord::create(new, new_id("sch"), "bench", now)?)
            .await?;
    }
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let all = store.list_schedules(None).await?;
        let mut due = 0usize;
        for s in &all {
            if s.timing()?.next_after(now).is_some() {
                due += 1;
            }
        }
        if due != 10_000 {
            bail!("{due} of 10000 schedules have a next fire");
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let t = Instant::now();
    let all = store.list_schedules(None).await?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let parsed: Vec<_> = all
        .iter()
        .map(cairn_core::schedule::ScheduleRecord::timing)
        .collect::<Result<_, _>>()?;
    let parse_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    for p in &parsed {
        let _ = p.next_after(now);
    }
    let next_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut idle = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let _ = store.due_schedules(now).await?;
        idle.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("schedules (10,000: cron in five zones, intervals, one-shots)");
    println!(
        "  scheduler start / a tick with nothing due: {:.0} µs (next fires are stored; target < 50 ms)",
        median(idle)
    );
    println!(
        "  all loaded and every next fire recomputed from its spec: {:.1} ms (median of 7)",
        median(times)
    );
    println!(
        "    first pass: load {load_ms:.1} ms, parse {parse_ms:.1} ms, next fires {next_ms:.1} ms"
    );
    Ok(())
}

/// A signed webhook message in → first byte of the signed reply out, and
/// the idle memory of a server with Telegram polling and a webhook.
pub async fn channels(fake: &FakeLlm, bin: &Path) -> Result<()> {
    // The receiving end of replies records when each arrives.
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let sink = arrivals.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let reply_url = format!("http://{}/r", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/r",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                let at = Instant::now();
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(chat) = v["chat"].as_str() {
                    sink.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((chat.to_string(), at));
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let tg = FakeTelegram::start("B");
    let home = tempfile::tempdir()?;
    std::fs::write(
        home.path().join("cairn.toml"),
        format!(
            "[channels.webhook.bench]\nsecret = \"s\"\nreply_url = \"{reply_url}\"\n\
             [channels.telegram]\ntoken = \"B\"\napi_url = \"{}\"\nallow = [\"*\"]\npoll_timeout_s = 2\n",
            tg.url()
        ),
    )?;
    std::fs::set_permissions(
        home.path().join("cairn.toml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let mut cmd = Command::new(bin);
    cmd.env("CAIRN_HOME", home.path())
        .env("ANTHROPIC_API_KEY", "k")
        .env("ANTHROPIC_BASE_URL", fake.anthropic_url());
    let server = ServerProcess::start(cmd);
    // Idle, both channels connected (Telegram long-polling).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle_kib = vm_rss_kib(server.pid()).unwrap_or(0);

    let http = cairn_llm::http_client();
    let url = format!("{}/channels/webhook/bench", server.url);
    let n = 200;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        fake.push([Reply::text("ok")]);
        let chat = format!("c{i}");
        let body =
            json!({"id": format!("m{i}"), "chat": chat, "user": "u", "text": "ping"}).to_string();
        let (ts, sig) = webhook_signature("s", cairn_core::now_ms() / 1000, &body);
        let sent = Instant::now();
        let r = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-cairn-timestamp", ts)
            .header("x-cairn-signature", sig)
            .body(body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("HTTP {}", r.status());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = arrivals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .find(|(c, _)| *c == chat)
                .map(|(_, at)| *at);
            if let Some(at) = got {
                lat.push(at.duration_since(sent).as_secs_f64() * 1e3);
                break;
            }
            if Instant::now() > deadline {
                bail!("no reply for message {i}");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    lat.sort_by(f64::total_cmp);
    println!("channels (signed webhook in → signed reply POST out; the fake LLM answers at once)");
    println!(
        "  inbound → first outbound byte: p50 {:.2} ms, p99 {:.2} ms (target p50 < 5)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!(
        "  idle cairn serve, Telegram polling + a webhook: {:.1} MB RSS (target < 30)",
        idle_kib as f64 / 1024.0
    );
    Ok(())
}
