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
    async fn agent(&self, name: &str) -> Result<AgentSpec, String> {
        if name == "default" {
            Ok(AgentSpec::default())
        } else {
            Err("no such agent in the config".into())
        }
    }
}

fn ms(rfc: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc)
        .unwrap()
        .timestamp_millis()
}

async fn runtime(dir: &std::path::Path) -> Runtime {
    let store = Store::open_sqlite(&dir.join("cairn.db")).await.unwrap();
    Runtime::new(
        store,
        Arc::new(UnconfiguredProvider::new(
            "tests fire runs, they do not drive them",
        )),
        dir.join("ws"),
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
    rt.store.create_schedule(&s).await.unwrap();
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

    let fires = rt.store.schedule_fires(Some(&once.id), 10).await.unwrap();
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
        .store
        .get_run(fires[0].run_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(run.input, "morning briefing");
    assert_eq!(run.session_id, once.session_id);

    let fires = rt.store.schedule_fires(Some(&skip.id), 10).await.unwrap();
    assert_eq!(fires[0].outcome, FireOutcome::Skipped);
    assert!(fires[0].run_id.is_none());
    assert!(
        fires[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("catch_up = skip")
    );

    // Both continue at the next occurrence after the restart.
    for s in [&once, &skip] {
        let now = rt.store.get_schedule(&s.id).await.unwrap();
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
            rt.store
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
    let fires = rt.store.schedule_fires(Some(&s.id), 10).await.unwrap();
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
    assert_eq!(rt.store.get_schedule(&s.id).await.unwrap().next_due, None);

    let mut gone = add(&rt, ScheduleKind::Every, "1m", "UTC", CatchUp::Once, t0).await;
    gone.agent = "retired".into();
    rt.store.delete_schedule(&gone.id).await.unwrap();
    rt.store.create_schedule(&gone).await.unwrap();
    let r = rt.scheduler_tick(t0 + 60_000, &Agents).await.unwrap();
    assert!(r.fired.is_empty());
    assert_eq!(r.not_run, 1);
    let f = &rt.store.schedule_fires(Some(&gone.id), 1).await.unwrap()[0];
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
    let fires = a.store.schedule_fires(None, 1000).await.unwrap();
    assert_eq!(fires.len(), 100);
    assert!(fires.iter().all(|f| f.outcome == FireOutcome::Fired));
    let runs = a.store.list_runs(None, 1000).await.unwrap();
    assert_eq!(runs.len(), 100, "one run per fire, no more");
    eprintln!("lost races: {lost}");
}
