//! Schedules on both backends: create, list, pause, delete, declared ones
//! upserted and pruned, fires applied once per due time with their runs,
//! fire history, the cost and activity a heartbeat's gates read, and the
//! scheduler loop's liveness.

use cairn_core::ids::new_id;
use cairn_core::schedule::{
    CatchUp, FireOutcome, FireRecord, NewSchedule, ScheduleKind, ScheduleRecord,
};
use cairn_store::{RunStore, ScheduleFire, ScheduleStore, SessionStore, StoreError};

use crate::{Harness, both, end_run, new_run};

both!(
    schedules_are_created_listed_paused_and_deleted,
    declared_schedules_are_upserted_and_pruned,
    a_due_time_fires_once_with_its_run,
    costs_activity_and_the_scheduler_heartbeat,
);

const T0: i64 = 1_790_000_000_000;
const HOUR: i64 = 3_600_000;

fn schedule(agent: &str, spec: &str, by: &str) -> ScheduleRecord {
    let new = NewSchedule {
        agent: agent.into(),
        session_id: None,
        prompt: "briefing".into(),
        kind: ScheduleKind::Every,
        spec: spec.into(),
        tz: Some("UTC".into()),
        catch_up: CatchUp::Once,
    };
    ScheduleRecord::create(new, new_id("sch"), by, T0).unwrap()
}

async fn schedules_are_created_listed_paused_and_deleted<H: Harness>(h: H) {
    let s = h.open().await;
    let a = schedule("alpha", "1h", "api");
    let b = schedule("beta", "30m", "api");
    s.create_schedule(&a).await.unwrap();
    s.create_schedule(&b).await.unwrap();
    let all = s.list_schedules(None).await.unwrap();
    let ids: Vec<_> = all.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, vec![b.id.as_str(), a.id.as_str()], "soonest first");
    let alpha = s.list_schedules(Some("alpha")).await.unwrap();
    assert_eq!(alpha.len(), 1);
    assert_eq!(alpha[0].prompt, "briefing");
    let found = s.get_schedule(&a.id[..a.id.len() - 2]).await.unwrap();
    assert_eq!(found.id, a.id, "found by a unique prefix");
    let err = s.get_schedule("sch_nothing").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    s.set_schedule_paused(&a.id, true, None).await.unwrap();
    assert!(s.get_schedule(&a.id).await.unwrap().paused);
    assert!(
        s.due_schedules(T0 + 10 * HOUR)
            .await
            .unwrap()
            .iter()
            .all(|x| x.id != a.id),
        "a paused schedule is never due"
    );
    s.set_schedule_paused(&a.id, false, Some(T0 + 5 * HOUR))
        .await
        .unwrap();
    let resumed = s.get_schedule(&a.id).await.unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.next_due, Some(T0 + 5 * HOUR));
    s.delete_schedule(&b.id).await.unwrap();
    assert!(matches!(
        s.get_schedule(&b.id).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
}

async fn declared_schedules_are_upserted_and_pruned<H: Harness>(h: H) {
    let s = h.open().await;
    let kept = schedule("alpha", "1h", "config");
    let gone = schedule("alpha", "2h", "config");
    let mine = schedule("alpha", "3h", "api");
    for x in [&kept, &gone, &mine] {
        s.upsert_schedule(x).await.unwrap();
    }
    // Paused by hand, then declared again unchanged: it stays paused.
    s.set_schedule_paused(&kept.id, true, None).await.unwrap();
    let paused = s.get_schedule(&kept.id).await.unwrap();
    let mut again = kept.clone();
    again.prompt = "new wording".into();
    s.upsert_schedule(&again).await.unwrap();
    let now = s.get_schedule(&kept.id).await.unwrap();
    assert!(now.paused, "an unchanged spec keeps its paused state");
    assert_eq!(now.prompt, "new wording");
    assert_eq!(now.next_due, paused.next_due);
    let pruned = s
        .prune_schedules("config", std::slice::from_ref(&kept.id))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let left: Vec<_> = s
        .list_schedules(None)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert!(
        left.contains(&kept.id) && left.contains(&mine.id),
        "{left:?}"
    );
    assert!(!left.contains(&gone.id));
}

/// `sch`'s due time fired with `run`; the next due an hour later.
fn fire<'a>(
    sch: &'a ScheduleRecord,
    record: &FireRecord,
    run: &'a cairn_core::RunRecord,
) -> ScheduleFire<'a> {
    let due = record.due_at;
    ScheduleFire {
        schedule_id: &sch.id,
        expected_due: due,
        next_due: Some(due + HOUR),
        records: vec![record.clone()],
        run: Some(run),
    }
}

async fn a_due_time_fires_once_with_its_run<H: Harness>(h: H) {
    let s = h.open().await;
    let other = h.open().await;
    let sch = schedule("default", "1h", "api");
    s.create_schedule(&sch).await.unwrap();
    let due = sch.next_due.unwrap();
    assert!(s.due_schedules(due - 1).await.unwrap().is_empty());
    assert_eq!(s.due_schedules(due).await.unwrap().len(), 1);
    let mut run = new_run(&sch.session_id);
    run.created_at = due;
    let fired = FireRecord {
        schedule_id: sch.id.clone(),
        due_at: due,
        handled_at: due + 5,
        outcome: FireOutcome::Fired,
        reason: None,
        run_id: Some(run.id.clone()),
    };
    assert!(s.fire_schedule(fire(&sch, &fired, &run)).await.unwrap());
    // A second scheduler that read the same due time loses the race and
    // writes nothing: no second run, no second record.
    let rival = new_run(&sch.session_id);
    assert!(
        !other
            .fire_schedule(fire(&sch, &fired, &rival))
            .await
            .unwrap()
    );
    assert!(s.get_run(&rival.id).await.is_err());
    assert_eq!(s.get_run(&run.id).await.unwrap().input, run.input);
    assert_eq!(
        s.get_schedule(&sch.id).await.unwrap().next_due,
        Some(due + HOUR)
    );
    let fires = s.schedule_fires(Some(&sch.id), 10).await.unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].run_id.as_deref(), Some(run.id.as_str()));
    assert_eq!(s.schedule_fires(None, 10).await.unwrap().len(), 1);
    assert_eq!(
        s.last_person_activity("default").await.unwrap(),
        None,
        "a schedule's run is nobody's activity"
    );
    assert_eq!(s.prune_schedule_fires(due).await.unwrap(), 0);
    assert_eq!(s.prune_schedule_fires(due + 1).await.unwrap(), 1);
    assert!(
        s.schedule_fires(Some(&sch.id), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn costs_activity_and_the_scheduler_heartbeat<H: Harness>(h: H) {
    let s = h.open().await;
    assert_eq!(s.last_person_activity("default").await.unwrap(), None);
    s.ensure_session("c1", "default").await.unwrap();
    let mut run = new_run("c1");
    run.user_id = Some("alice".into());
    s.create_run(&run).await.unwrap();
    run.status = cairn_core::RunStatus::Completed;
    run.cost_usd = 0.25;
    end_run(&*s, &run).await;
    let since = run.created_at - 1;
    assert!((s.session_cost_since("c1", since).await.unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(
        s.session_cost_since("c1", run.created_at + 1)
            .await
            .unwrap(),
        0.0
    );
    assert!((s.agent_cost_since("default", since).await.unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(s.agent_cost_since("other", since).await.unwrap(), 0.0);
    assert!((s.user_cost_since("alice", since).await.unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(s.user_cost_since("bob", since).await.unwrap(), 0.0);
    assert_eq!(
        s.last_person_activity("default").await.unwrap(),
        Some(run.created_at)
    );
    assert_eq!(s.scheduler_last_seen().await.unwrap(), None);
    s.scheduler_heartbeat("proc-a", T0).await.unwrap();
    s.scheduler_heartbeat("proc-b", T0 + 7).await.unwrap();
    assert_eq!(s.scheduler_last_seen().await.unwrap(), Some(T0 + 7));
}
