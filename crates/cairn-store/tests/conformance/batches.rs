//! Batches and agents on both backends: a batch is created once by name,
//! its items start once each, settle by their runs' ends (retried while
//! attempts remain), and the batch finishes; one leader row at a time;
//! agents stored, replaced and listed.

use cairn_core::AgentSpec;
use cairn_core::batch::{BatchRecord, ItemStatus};
use cairn_core::{RunRecord, RunStatus};
use cairn_store::{AgentStore, BatchStore, JobQueue, RunStore, StoreError, kinds};

use crate::{Harness, Tables, both, end_run, new_run};

both!(
    a_batch_runs_each_item_once_and_retries_failures,
    one_leader_at_a_time,
    agents_are_stored_replaced_and_listed,
);

fn batch(name: &str) -> BatchRecord {
    BatchRecord {
        id: cairn_core::ids::new_id("bat"),
        name: name.into(),
        agent: "default".into(),
        source: "items.jsonl".into(),
        concurrency: 4,
        max_attempts: 2,
        created_at: cairn_core::now_ms(),
        finished_at: None,
    }
}

/// Starts item `idx` with a fresh run; the run.
async fn start<S: Tables>(s: &S, b: &BatchRecord, idx: i64) -> RunRecord {
    let run = new_run(&format!("{}-{idx}", b.name));
    s.ensure_session(&run.session_id, "default").await.unwrap();
    assert!(s.start_batch_item(&b.id, idx, &run).await.unwrap());
    run
}

/// Ends `run` as `status`.
async fn end<S: Tables>(s: &S, mut run: RunRecord, status: RunStatus) {
    run.status = status;
    run.output = Some(format!("{status:?}"));
    end_run(s, &run).await;
}

async fn a_batch_runs_each_item_once_and_retries_failures<H: Harness>(h: H) {
    let s = h.open().await;
    let b = batch("docs");
    let items: Vec<(String, String)> = (0..3)
        .map(|i| (format!("doc{i}"), format!("summarise doc {i}")))
        .collect();
    let stored = s.create_batch(&b, &items).await.unwrap();
    assert_eq!(stored.id, b.id);
    // The same name again is the same batch (a rerun resumes it).
    let again = s.create_batch(&batch("docs"), &[]).await.unwrap();
    assert_eq!(again.id, b.id);
    assert_eq!(s.get_batch("docs").await.unwrap().unwrap().id, b.id);
    assert_eq!(s.get_batch(&b.id).await.unwrap().unwrap().name, "docs");
    assert!(s.get_batch("nope").await.unwrap().is_none());
    assert_eq!(s.list_batches(10).await.unwrap().len(), 1);
    assert_eq!(s.active_batches().await.unwrap().len(), 1);
    assert_eq!(s.batch_counts(&b.id).await.unwrap().pending, 3);

    let first = start(&*s, &b, 0).await;
    let rival = new_run("docs-0b");
    assert!(
        !s.start_batch_item(&b.id, 0, &rival).await.unwrap(),
        "an item starts once"
    );
    assert!(s.get_run(&rival.id).await.is_err());
    let second = start(&*s, &b, 1).await;
    let third = start(&*s, &b, 2).await;
    let running = s
        .batch_items(&b.id, Some(ItemStatus::Running), -1, 10)
        .await
        .unwrap();
    assert_eq!(running.len(), 3);
    // Each item's run was queued with its job.
    let mut jobs = 0;
    while s
        .claim_job(&[kinds::ADVANCE_RUN], 30_000)
        .await
        .unwrap()
        .is_some()
    {
        jobs += 1;
    }
    assert_eq!(jobs, 3);

    end(&*s, first, RunStatus::Completed).await;
    end(&*s, second, RunStatus::Failed).await;
    assert_eq!(s.settle_batch(&b).await.unwrap(), 2);
    let counts = s.batch_counts(&b.id).await.unwrap();
    assert_eq!((counts.done, counts.pending, counts.running), (1, 1, 1));
    let retried = start(&*s, &b, 1).await;
    end(&*s, retried, RunStatus::Failed).await;
    end(&*s, third, RunStatus::Cancelled).await;
    s.settle_batch(&b).await.unwrap();
    let counts = s.batch_counts(&b.id).await.unwrap();
    assert_eq!(counts.failed, 1, "out of attempts: {counts:?}");
    assert_eq!(counts.pending, 1, "one attempt left: {counts:?}");
    let last = start(&*s, &b, 2).await;
    end(&*s, last, RunStatus::Completed).await;
    s.settle_batch(&b).await.unwrap();
    let counts = s.batch_counts(&b.id).await.unwrap();
    assert_eq!((counts.done, counts.failed, counts.total()), (2, 1, 3));
    let done = s.get_batch(&b.id).await.unwrap().unwrap();
    assert!(done.finished_at.is_some(), "nothing left: finished");
    assert!(s.active_batches().await.unwrap().is_empty());
    let items = s.batch_items(&b.id, None, 0, 10).await.unwrap();
    assert_eq!(items.len(), 2, "after position 0");
    assert_eq!(items[0].attempt, 2);
    assert_eq!(items[0].status, ItemStatus::Failed);
}

async fn one_leader_at_a_time<H: Harness>(h: H) {
    let s = h.open().await;
    let other = h.open().await;
    assert!(s.try_lead("batch", "a", 60_000).await.unwrap());
    assert!(s.try_lead("batch", "a", 60_000).await.unwrap(), "kept");
    assert!(!other.try_lead("batch", "b", 60_000).await.unwrap());
    assert!(other.try_lead("schedule", "b", 60_000).await.unwrap());
    // Its holder gone quiet past the ttl, the row is taken over.
    assert!(s.try_lead("reaper", "a", 1).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(other.try_lead("reaper", "b", 60_000).await.unwrap());
    assert!(!s.try_lead("reaper", "a", 60_000).await.unwrap());
}

async fn agents_are_stored_replaced_and_listed<H: Harness>(h: H) {
    let s = h.open().await;
    let err = s.get_agent("writer").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let mut writer = AgentSpec {
        name: "writer".into(),
        system_prompt: "You write.".into(),
        ..AgentSpec::default()
    };
    s.put_agent(&writer).await.unwrap();
    writer.system_prompt = "You write well.".into();
    s.put_agent(&writer).await.unwrap();
    let reader = AgentSpec {
        name: "reader".into(),
        ..AgentSpec::default()
    };
    s.put_agent(&reader).await.unwrap();
    assert_eq!(
        s.get_agent("writer").await.unwrap().system_prompt,
        "You write well."
    );
    let names: Vec<_> = s
        .list_agents()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"reader".to_string()) && names.contains(&"writer".to_string()));
}
