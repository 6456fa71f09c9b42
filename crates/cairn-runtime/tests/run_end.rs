//! Every run ends in its journal, once, whichever way it ends: completed,
//! failed by the model, unable to start, cancelled while it works or
//! before anyone started it, stopped by the watchdog, failed by an
//! executor that could not drive it — and when the store fails at the
//! moment of ending, the run is driven again and still ends once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cairn_core::{AgentSpec, JournalPayload, RunEnd, RunRecord, RunStatus};
use cairn_runtime::{CancelOutcome, Runtime, TurnRequest};
use cairn_store::{Store, kinds};
use cairn_testkit::{FakeLlm, Reply};
use tokio_util::sync::CancellationToken;

mod support;
use support::{TestStore, claim_next, drive_next, runtime, runtime_with};

/// Makes the database refuse to journal a run's end, as a full disk or a
/// lost connection would at that moment.
const REFUSE_SQLITE: &str = "CREATE TRIGGER refuse_run_end BEFORE INSERT ON run_journal
    WHEN NEW.kind = 'run_end' BEGIN SELECT RAISE(ABORT, 'injected: cannot write'); END;";
const REFUSE_POSTGRES: &str = "CREATE FUNCTION refuse_run_end() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.kind = 'run_end' THEN RAISE EXCEPTION 'injected: cannot write'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER refuse_run_end BEFORE INSERT ON run_journal FOR EACH ROW EXECUTE FUNCTION refuse_run_end();";
const ALLOW_SQLITE: &str = "DROP TRIGGER refuse_run_end;";
const ALLOW_POSTGRES: &str = "DROP TRIGGER refuse_run_end ON run_journal;";

/// The run's single end (fails the test unless there is exactly one, and
/// it is the journal's last entry and agrees with the run's row).
async fn the_end(store: &Store, run_id: &str) -> RunEnd {
    let journal = store.journal(run_id).await.unwrap();
    let ends: Vec<_> = journal
        .iter()
        .filter_map(|e| match &e.body {
            JournalPayload::RunEnd(end) => Some(end.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends.len(),
        1,
        "run {run_id} must end exactly once: {journal:#?}"
    );
    assert!(
        matches!(
            journal.last().map(|e| &e.body),
            Some(JournalPayload::RunEnd(_))
        ),
        "nothing is journaled after the end: {journal:#?}"
    );
    let run = store.get_run(run_id).await.unwrap();
    assert_eq!(run.status, ends[0].status, "{run:?}");
    assert_eq!(run.error, ends[0].error, "{run:?}");
    ends[0].clone()
}

async fn submit(rt: &Runtime, session: &str) -> RunRecord {
    let req = TurnRequest {
        agent: AgentSpec::default(),
        session_id: Some(session.into()),
        input: "hello".into(),
        user_id: None,
    };
    rt.submit(&req).await.unwrap().0
}

/// No job is left for a run that ended.
async fn no_job_left(store: &Store) {
    let left = store
        .claim_job(&[kinds::ADVANCE_RUN], 30_000)
        .await
        .unwrap();
    assert!(left.is_none(), "{left:?}");
}

async fn completed_and_failed_by_the_model(t: TestStore) {
    let store = t.open().await;
    let fake = FakeLlm::start();
    let ws = tempfile::tempdir().unwrap();
    let rt = runtime(store.clone(), &fake, ws.path());
    fake.push([
        Reply::text("hi"),
        Reply::error(400, "your request is malformed"),
    ]);
    let done = submit(&rt, "a").await;
    assert_eq!(drive_next(&rt).await.status, RunStatus::Completed);
    assert_eq!(the_end(&store, &done.id).await.status, RunStatus::Completed);
    let failed = submit(&rt, "a").await;
    assert_eq!(drive_next(&rt).await.status, RunStatus::Failed);
    let end = the_end(&store, &failed.id).await;
    assert!(end.error.unwrap().contains("malformed"));
    no_job_left(&store).await;
}

async fn a_run_that_cannot_start(t: TestStore) {
    let store = t.open().await;
    let fake = FakeLlm::start();
    let dir = tempfile::tempdir().unwrap();
    // Workspaces under a regular file: the agent's cannot be made.
    let blocked = dir.path().join("not-a-directory");
    std::fs::write(&blocked, "").unwrap();
    let rt = runtime(store.clone(), &fake, &blocked);
    let run = submit(&rt, "b").await;
    let ended = drive_next(&rt).await;
    assert_eq!(ended.status, RunStatus::Failed);
    let end = the_end(&store, &run.id).await;
    assert!(end.error.unwrap().starts_with("cannot start"), "{ended:?}");
    assert!(
        fake.requests().is_empty(),
        "a run that cannot start calls no model"
    );
    no_job_left(&store).await;
    // Its session is free for the next turn.
    assert!(
        store
            .try_acquire_session("b", "run_next", 30_000)
            .await
            .unwrap()
            .is_some()
    );
}

async fn cancelled_queued_working_and_stuck(t: TestStore) {
    let store = t.open().await;
    let fake = FakeLlm::start();
    let ws = tempfile::tempdir().unwrap();
    let rt = runtime(store.clone(), &fake, ws.path());
    // Before anyone started it.
    let queued = submit(&rt, "c1").await;
    match rt.cancel_run(&queued.id).await.unwrap() {
        CancelOutcome::Withdrawn(run) => assert_eq!(run.status, RunStatus::Cancelled),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        the_end(&store, &queued.id).await.status,
        RunStatus::Cancelled
    );
    // While it waits on the model: asked through the API's path, then by
    // the watchdog (whose reason is the run's end).
    for (session, by_watchdog) in [("c2", false), ("c3", true)] {
        fake.push([Reply::Delayed(
            Duration::from_secs(20),
            Box::new(Reply::text("late")),
        )]);
        let run = submit(&rt, session).await;
        let driver = {
            let rt = rt.clone();
            tokio::spawn(async move { drive_next(&rt).await })
        };
        while fake.requests().len() < usize::from(by_watchdog) + 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if by_watchdog {
            assert!(rt.stop_stuck(&run.id, "watchdog: no progress for 600 s"));
        } else {
            assert!(matches!(
                rt.cancel_run(&run.id).await.unwrap(),
                CancelOutcome::Stopping
            ));
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), driver)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ended.status, RunStatus::Cancelled);
        let end = the_end(&store, &run.id).await;
        if by_watchdog {
            assert_eq!(
                end.error.as_deref(),
                Some("watchdog: no progress for 600 s")
            );
        }
        assert!(
            !rt.stop_stuck(&run.id, "again"),
            "an ended run is no longer driven"
        );
    }
    no_job_left(&store).await;
}

async fn failed_by_an_executor_that_could_not_drive_it(t: TestStore) {
    let store = t.open().await;
    let fake = FakeLlm::start();
    let ws = tempfile::tempdir().unwrap();
    let rt = runtime(store.clone(), &fake, ws.path());
    let run = submit(&rt, "d").await;
    let job = claim_next(&store, 30_000).await;
    let failed = rt
        .fail_run(&job, &run.id, "agent \"gone\" is not available", &|_| {})
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    // Said twice (a panic after the agent check), it ends once.
    rt.fail_run(&job, &run.id, "internal error", &|_| {})
        .await
        .unwrap();
    let end = the_end(&store, &run.id).await;
    assert_eq!(
        end.error.as_deref(),
        Some("agent \"gone\" is not available")
    );
    no_job_left(&store).await;
}

async fn a_store_error_at_the_moment_of_failing(t: TestStore) {
    let store = t.open().await;
    let fake = FakeLlm::start();
    let ws = tempfile::tempdir().unwrap();
    let settings = cairn_runtime::Settings {
        job_lease_ms: 600,
        ..Default::default()
    };
    let rt = runtime_with(store.clone(), &fake, ws.path(), settings);
    fake.push([
        Reply::error(400, "bad request"),
        Reply::text("second time lucky"),
    ]);
    let run = submit(&rt, "e").await;
    t.sql(REFUSE_SQLITE, REFUSE_POSTGRES).await;
    let job = claim_next(&store, rt.job_lease_ms()).await;
    let err = rt
        .drive(job, AgentSpec::default(), &|_| {}, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert!(!store.get_run(&run.id).await.unwrap().status.is_terminal());
    // The store recovers; the job's lease lapses and the run is driven again.
    t.sql(ALLOW_SQLITE, ALLOW_POSTGRES).await;
    let mut tries = 0;
    let again = loop {
        tries += 1;
        assert!(tries < 100, "the run's job never came back to the queue");
        store.recover_leases().await.unwrap();
        if let Some(job) = store
            .claim_job(&[kinds::ADVANCE_RUN], 30_000)
            .await
            .unwrap()
        {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again.run_id.as_deref(), Some(run.id.as_str()));
    let ended = rt
        .drive(
            again,
            AgentSpec::default(),
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(ended.status, RunStatus::Completed);
    assert_eq!(the_end(&store, &run.id).await.status, RunStatus::Completed);
    no_job_left(&store).await;
}

/// Instantiates each scenario once per backend.
macro_rules! both {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $test(TestStore::sqlite()).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $test(TestStore::postgres().await).await;
                }
            }
        )*
    };
}

both!(
    completed_and_failed_by_the_model,
    a_run_that_cannot_start,
    cancelled_queued_working_and_stuck,
    failed_by_an_executor_that_could_not_drive_it,
    a_store_error_at_the_moment_of_failing,
);
