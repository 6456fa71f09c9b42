//! The scheduler on a real SQLite store with an injected clock: on-time
//! fires, occurrences missed across a restart (run once or skipped, always
//! recorded), DST nights, one-shots, and two schedulers racing on the same
//! file firing each due time once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::AgentSpec;
use cairn_core::ids::new_id;
use cairn_core::schedule::{CatchUp, FireOutcome, NewSchedule, ScheduleKind, ScheduleRecord};
use cairn_llm::UnconfiguredProvider;
use cairn_runtime::{AgentSource, Runtime};
use cairn_store::Store;

struct Agents;

#[async_trait]
impl AgentSource for Agents {
    async fn agent(&self, name: &str) -> Result<Option<AgentSpec>, cairn_store::StoreError> {
        if name == "default" {
            Ok(Some(AgentSpec {
                owner: Some("telegram:555".into()),
                ..AgentSpec::default()
            }))
        } else {
            Ok(None)
        }
    }
}

fn ms(rfc: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc)
        .unwrap()
        .timestamp_millis()
}

/// A runtime on a SQLite store in `dir`, which is also its `CAIRN_HOME`
/// (where a heartbeat's checklist is read).
async fn runtime(dir: &std::path::Path) -> Runtime {
    let store = Store::open_sqlite(&dir.join("cairn.db")).await.unwrap();
    let settings = cairn_runtime::Settings {
        home: Some(dir.to_path_buf()),
        ..Default::default()
    };
    Runtime::with_settings(
        store,
        Arc::new(UnconfiguredProvider::new(
            "tests fire runs, they do not drive them",
        )),
        dir.join("ws"),
        settings,
    )
}

async fn add(
    rt: &Runtime,
    kind: ScheduleKind,
    spec: &str,
    tz: &str,
    catch_up: CatchUp,
    now: i64,
) -> ScheduleRecord {
    let new = NewSchedule {
        agent: "default".into(),
        session_id: None,
        prompt: "morning briefing".into(),
        kind,
        spec: spec.into(),
        tz: Some(tz.into()),
        catch_up,
    };
    let s = ScheduleRecord::create(new, new_id("sch"), "test", now).unwrap();
    rt.store().create_schedule(&s).await.unwrap();
    s
}

#[tokio::test]
async fn on_time_fires_and_missed_occurrences_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path()).await;
    let t0 = ms("2026-11-26T10:00:00Z");
    let hour = 3_600_000;
    let once = add(&rt, ScheduleKind::Every, "1h", "UTC", CatchUp::Once, t0).await;
    let skip = add(&rt, ScheduleKind::Every, "1h", "UTC", CatchUp::Skip, t0).await;

    // Not yet due.
    assert!(
        rt.scheduler_tick(t0 + hour - 1, &Agents)
            .await
            .unwrap()
            .fired
            .is_empty()
    );
    // Due, a few seconds late: both fire, on time.
    let r = rt.scheduler_tick(t0 + hour + 3_000, &Agents).await.unwrap();
    assert_eq!(r.fired.len(), 2);
    // The same instant again: nothing more.
    assert!(
        rt.scheduler_tick(t0 + hour + 3_000, &Agents)
            .await
            .unwrap()
            .fired
            .is_empty()
    );

    // The host was down from 11:00 to 15:30; a new process starts.
    drop(rt);
    let rt = runtime(dir.path()).await;
    let r = rt
        .scheduler_tick(t0 + 5 * hour + hour / 2, &Agents)
        .await
        .unwrap();
    assert_eq!(r.fired.len(), 1, "catch_up once: one run for all it missed");

    let fires = rt.store().schedule_fires(Some(&once.id), 10).await.unwrap();
    let outcomes: Vec<_> = fires.iter().map(|f| (f.outcome, f.due_at)).collect();
    assert_eq!(
        outcomes,
        vec![
            (FireOutcome::Fired, t0 + 5 * hour),
            (FireOutcome::Missed, t0 + 2 * hour),
            (FireOutcome::Fired, t0 + hour),
        ]
    );
    let why = fires[0].reason.as_deref().unwrap();
    assert!(why.contains("4 occurrence(s)"), "{why}");
    assert!(why.contains("ran once"), "{why}");
    let run = rt
        .store()
        .get_run(fires[0].run_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(run.input, "morning briefing");
    assert_eq!(run.session_id, once.session_id);

    let fires = rt.store().schedule_fires(Some(&skip.id), 10).await.unwrap();
    assert_eq!(fires[0].outcome, FireOutcome::Skipped);
    assert!(fires[0].run_id.is_none());
    assert!(
        fires[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("catch_up = skip")
    );

    // The owner is told, once per schedule, on their channel.
    let notices = rt
        .store()
        .list_outbound(Some("telegram"), 10)
        .await
        .unwrap();
    assert_eq!(notices.len(), 2, "{notices:#?}");
    assert!(notices.iter().all(|n| n.chat_id == "555"));
    assert!(notices.iter().any(|n| n.text.contains("ran it once now")));
    assert!(notices.iter().any(|n| n.text.contains("skipped them")));
    assert!(
        notices[0]
            .text
            .contains("passed while no scheduler was running")
    );

    // Records older than a cut-off are pruned; newer ones stay (each
    // schedule's on-time fire and its missed record go).
    assert_eq!(
        rt.store()
            .prune_schedule_fires(t0 + 2 * hour + 1)
            .await
            .unwrap(),
        4
    );
    let left = rt.store().schedule_fires(Some(&once.id), 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].due_at, t0 + 5 * hour);

    // Both continue at the next occurrence after the restart.
    for s in [&once, &skip] {
        let now = rt.store().get_schedule(&s.id).await.unwrap();
        assert_eq!(now.next_due, Some(t0 + 6 * hour));
    }
}

#[tokio::test]
async fn dst_nights_fire_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path()).await;
    let start = ms("2026-03-28T12:00:00Z");
    let s = add(
        &rt,
        ScheduleKind::Cron,
        "30 2 * * *",
        "Europe/Paris",
        CatchUp::Once,
        start,
    )
    .await;
    // A scheduler ticking every 5 minutes through the spring-forward night
    // (02:00-03:00 does not exist) and through the fall-back night
    // (02:00-03:00 happens twice).
    let mut fired = vec![];
    for (from, to) in [
        ("2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"),
        ("2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z"),
    ] {
        if from.starts_with("2026-10") {
            // Skip the months between without firing them.
            rt.store()
                .set_schedule_paused(&s.id, false, s.timing().unwrap().next_after(ms(from)))
                .await
                .unwrap();
        }
        let mut t = ms(from);
        while t <= ms(to) {
            fired.extend(rt.scheduler_tick(t, &Agents).await.unwrap().fired);
            t += 300_000;
        }
    }
    let fires = rt.store().schedule_fires(Some(&s.id), 10).await.unwrap();
    let dues: Vec<i64> = fires.iter().map(|f| f.due_at).collect();
    assert_eq!(fired.len(), 2, "{fires:#?}");
    assert_eq!(
        dues,
        vec![
            ms("2026-10-25T02:30:00+02:00"),
            ms("2026-03-29T03:00:00+02:00")
        ]
    );
    assert!(
        fires
            .iter()
            .all(|f| f.outcome == FireOutcome::Fired && f.reason.is_none())
    );
}

#[tokio::test]
async fn a_one_shot_fires_once_and_an_unknown_agent_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path()).await;
    let t0 = ms("2026-11-26T10:00:00Z");
    let s = add(
        &rt,
        ScheduleKind::At,
        "2026-11-26T11:30:00+01:00",
        "UTC",
        CatchUp::Once,
        t0,
    )
    .await;
    let at = t0 + 1_800_000;
    assert_eq!(s.next_due, Some(at));
    let past = ScheduleRecord::create(
        NewSchedule {
            agent: "default".into(),
            session_id: None,
            prompt: "x".into(),
            kind: ScheduleKind::At,
            spec: "2026-11-26T09:00:00Z".into(),
            tz: None,
            catch_up: CatchUp::Once,
        },
        new_id("sch"),
        "test",
        t0 + 1,
    );
    assert!(past.is_err(), "a one-shot in the past is refused");

    assert!(
        rt.scheduler_tick(at - 1, &Agents)
            .await
            .unwrap()
            .fired
            .is_empty()
    );
    assert_eq!(
        rt.scheduler_tick(at + 10, &Agents)
            .await
            .unwrap()
            .fired
            .len(),
        1
    );
    assert!(
        rt.scheduler_tick(at + 60_000, &Agents)
            .await
            .unwrap()
            .fired
            .is_empty()
    );
    assert_eq!(rt.store().get_schedule(&s.id).await.unwrap().next_due, None);

    let mut gone = add(&rt, ScheduleKind::Every, "1m", "UTC", CatchUp::Once, t0).await;
    gone.agent = "retired".into();
    rt.store().delete_schedule(&gone.id).await.unwrap();
    rt.store().create_schedule(&gone).await.unwrap();
    let r = rt.scheduler_tick(t0 + 60_000, &Agents).await.unwrap();
    assert!(r.fired.is_empty());
    assert_eq!(r.not_run, 1);
    let f = &rt.store().schedule_fires(Some(&gone.id), 1).await.unwrap()[0];
    assert_eq!(f.outcome, FireOutcome::Skipped);
    assert!(f.reason.as_deref().unwrap().contains("not available"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_racing_on_one_store_fire_each_due_time_once() {
    let dir = tempfile::tempdir().unwrap();
    // Two runtimes on the same file: two processes, as far as SQLite knows.
    let a = runtime(dir.path()).await;
    let b = runtime(dir.path()).await;
    let t0 = ms("2026-11-26T10:00:00Z");
    for _ in 0..25 {
        add(&a, ScheduleKind::Every, "1m", "UTC", CatchUp::Once, t0).await;
    }
    let mut fired = 0;
    let mut lost = 0;
    for minute in 1..=4 {
        let now = t0 + minute * 60_000 + 500;
        let (ra, rb) = tokio::join!(
            a.scheduler_tick(now, &Agents),
            b.scheduler_tick(now, &Agents)
        );
        for r in [ra.unwrap(), rb.unwrap()] {
            fired += r.fired.len();
            lost += r.lost_races;
        }
    }
    assert_eq!(fired, 25 * 4, "each due time fired once");
    let fires = a.store().schedule_fires(None, 1000).await.unwrap();
    assert_eq!(fires.len(), 100);
    assert!(fires.iter().all(|f| f.outcome == FireOutcome::Fired));
    let runs = a.store().list_runs(None, 1000).await.unwrap();
    assert_eq!(runs.len(), 100, "one run per fire, no more");
    eprintln!("lost races: {lost}");
}

fn person_run(session: &str, at: i64) -> cairn_core::RunRecord {
    cairn_core::RunRecord {
        id: new_id("run"),
        session_id: session.into(),
        agent: "default".into(),
        status: cairn_core::RunStatus::Completed,
        input: "hi".into(),
        output: Some("hello".into()),
        error: None,
        provider: "test".into(),
        model: "m".into(),
        steps: 1,
        usage: Default::default(),
        cost_usd: 0.0,
        created_at: at,
        finished_at: Some(at),
        user_id: None,
    }
}

#[tokio::test]
async fn a_heartbeat_runs_only_when_someone_uses_the_agent_and_it_is_affordable() {
    use cairn_core::schedule::HeartbeatPolicy;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path()).await;
    let t0 = ms("2026-11-26T11:00:00+01:00");
    let half = 1_800_000;
    let new = NewSchedule {
        agent: "default".into(),
        session_id: Some("heartbeat-default".into()),
        prompt: "heartbeat".into(),
        kind: ScheduleKind::Every,
        spec: "30m".into(),
        tz: None,
        catch_up: CatchUp::Skip,
    };
    let mut s =
        ScheduleRecord::create(new, "sch_heartbeat-default".into(), "heartbeat", t0).unwrap();
    s.heartbeat = Some(HeartbeatPolicy {
        quiet_hours: Some("22:00-07:00".into()),
        tz: "Europe/Paris".into(),
        max_daily_usd: 0.05,
        idle_after_ms: 12 * 3_600_000,
        model: Some("small-local-model".into()),
    });
    rt.store().upsert_schedule(&s).await.unwrap();
    let last_reason = |rt: &Runtime| {
        let store = rt.store().clone();
        async move {
            let f = store
                .schedule_fires(Some("sch_heartbeat-default"), 1)
                .await
                .unwrap();
            (
                f[0].outcome,
                f[0].reason.clone().unwrap_or_default(),
                f[0].run_id.clone(),
            )
        }
    };

    // Nobody has ever used the agent: no run.
    let r = rt.scheduler_tick(t0 + half, &Agents).await.unwrap();
    assert!(r.fired.is_empty());
    let (outcome, why, _) = last_reason(&rt).await;
    assert_eq!(outcome, FireOutcome::Skipped);
    assert!(why.contains("nobody has used"), "{why}");

    // Someone talks to it; there is no checklist yet.
    rt.store().ensure_session("chat", "default").await.unwrap();
    rt.store()
        .create_run(&person_run("chat", t0 + half + 60_000))
        .await
        .unwrap();
    rt.scheduler_tick(t0 + 2 * half, &Agents).await.unwrap();
    assert!(last_reason(&rt).await.1.contains("HEARTBEAT.md"));

    // With a checklist it runs, on the heartbeat's own (cheap) model.
    let agent_dir = dir.path().join("agents/default");
    std::fs::create_dir_all(&agent_dir).unwrap();
    std::fs::write(
        agent_dir.join("HEARTBEAT.md"),
        "- Check the disk is not full.\n",
    )
    .unwrap();
    let r = rt.scheduler_tick(t0 + 3 * half, &Agents).await.unwrap();
    assert_eq!(r.fired.len(), 1);
    let mut run = rt.store().get_run(&r.fired[0]).await.unwrap();
    assert!(run.input.starts_with("Heartbeat:"), "{}", run.input);
    assert!(run.input.contains("Check the disk is not full."));
    assert_eq!(run.model, "small-local-model");
    assert_eq!(run.session_id, "heartbeat-default");

    // Its runs today cost the cap: no more today, and it says why.
    run.cost_usd = 0.06;
    rt.store().update_run(&run).await.unwrap();
    let r = rt.scheduler_tick(t0 + 4 * half, &Agents).await.unwrap();
    assert!(r.fired.is_empty());
    assert!(last_reason(&rt).await.1.contains("daily cost cap"));

    // Through the evening into quiet hours (22:00 Paris = t0 + 11 h).
    for k in 5..=23 {
        rt.scheduler_tick(t0 + k * half, &Agents).await.unwrap();
    }
    let (_, why, _) = last_reason(&rt).await;
    assert!(why.contains("quiet hours"), "{why}");

    // The next morning the cap is new, but nobody has come back for 12 h.
    for k in 24..=41 {
        rt.scheduler_tick(t0 + k * half, &Agents).await.unwrap();
    }
    let (_, why, _) = last_reason(&rt).await;
    assert!(why.contains("nobody has used"), "{why}");
    let fired = rt
        .store()
        .schedule_fires(Some("sch_heartbeat-default"), 100)
        .await
        .unwrap()
        .iter()
        .filter(|f| f.outcome == FireOutcome::Fired)
        .count();
    assert_eq!(fired, 1, "one heartbeat ran in all that time");
}

/// Agents that cannot be looked up: the database is unreachable.
struct Outage;

#[async_trait]
impl AgentSource for Outage {
    async fn agent(&self, _name: &str) -> Result<Option<AgentSpec>, cairn_store::StoreError> {
        Err(cairn_store::StoreError::Db(sqlx::Error::PoolTimedOut))
    }
}

#[tokio::test]
async fn a_store_error_looking_up_the_agent_is_not_a_skipped_fire() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path()).await;
    let t0 = ms("2026-11-26T10:00:00Z");
    let hour = 3_600_000;
    let s = add(&rt, ScheduleKind::Every, "1h", "UTC", CatchUp::Once, t0).await;
    let err = rt.scheduler_tick(t0 + hour, &Outage).await.unwrap_err();
    assert!(err.to_string().contains("database"), "{err}");
    assert!(
        rt.store()
            .schedule_fires(Some(&s.id), 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing is recorded while the agent cannot be read"
    );
    // The outage ends: the same due time fires, on time.
    let r = rt.scheduler_tick(t0 + hour + 1_000, &Agents).await.unwrap();
    assert_eq!(r.fired.len(), 1);
    let fires = rt.store().schedule_fires(Some(&s.id), 10).await.unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].outcome, FireOutcome::Fired);
    // An agent that does not exist is a skip, with the reason.
    let new = NewSchedule {
        agent: "nobody".into(),
        session_id: None,
        prompt: "hello?".into(),
        kind: ScheduleKind::Every,
        spec: "1h".into(),
        tz: Some("UTC".into()),
        catch_up: CatchUp::Once,
    };
    let gone = ScheduleRecord::create(new, new_id("sch"), "test", t0).unwrap();
    rt.store().create_schedule(&gone).await.unwrap();
    let r = rt.scheduler_tick(t0 + 2 * hour, &Agents).await.unwrap();
    let fires = rt.store().schedule_fires(Some(&gone.id), 10).await.unwrap();
    assert_eq!(fires[0].outcome, FireOutcome::Skipped, "{r:?}");
    assert!(
        fires[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("does not exist")
    );
}
