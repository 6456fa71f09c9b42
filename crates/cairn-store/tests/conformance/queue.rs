//! Queue state transitions: order, dedup, leases and fencing, retries and
//! dead letters, batches, and many claimers on one queue.

use std::collections::HashSet;

use cairn_store::{Beat, Failed, JobQueue, NewJob, Retry};

use crate::{Harness, both};

fn job(kind: &str, priority: i64, run_at: i64) -> NewJob {
    NewJob {
        kind: kind.into(),
        priority,
        run_at,
        payload: serde_json::json!({"n": priority}),
        ..Default::default()
    }
}

both!(
    claims_follow_priority_then_time_and_skip_future_and_other_kinds,
    a_dedup_key_allows_one_live_job,
    an_expired_lease_is_taken_over_and_the_old_claim_is_fenced,
    failures_back_off_then_become_dead_letters,
    batches_claim_disjoint_sets_and_complete_together,
    many_claimers_never_share_a_job,
);

async fn claims_follow_priority_then_time_and_skip_future_and_other_kinds<H: Harness>(h: H) {
    let s = h.open().await;
    let now = cairn_core::now_ms();
    s.enqueue(job("k", 5, now - 10)).await.unwrap();
    s.enqueue(job("k", 1, now - 5)).await.unwrap();
    s.enqueue(job("k", 1, now - 20)).await.unwrap();
    s.enqueue(job("k", 0, now + 60_000)).await.unwrap();
    s.enqueue(job("other", -5, now - 100)).await.unwrap();
    let mut order = Vec::new();
    while let Some(j) = s.claim_job(&["k"], 30_000).await.unwrap() {
        assert_eq!(j.attempt, 1);
        order.push(j.payload["n"].as_i64().unwrap());
    }
    assert_eq!(
        order,
        vec![1, 1, 5],
        "the future job and the other kind stay"
    );
    let other = s.claim_job(&["other", "k"], 30_000).await.unwrap().unwrap();
    assert_eq!(other.kind, "other");
}

async fn a_dedup_key_allows_one_live_job<H: Harness>(h: H) {
    let s = h.open().await;
    let keyed = NewJob {
        dedup_key: Some("fire:1".into()),
        ..job("k", 0, 0)
    };
    assert!(s.enqueue(keyed.clone()).await.unwrap().is_some());
    assert!(
        s.enqueue(keyed.clone()).await.unwrap().is_none(),
        "a live duplicate"
    );
    let claimed = s.claim_job(&["k"], 30_000).await.unwrap().unwrap();
    assert!(
        s.enqueue(keyed.clone()).await.unwrap().is_none(),
        "still live while leased"
    );
    // Dead-lettered: no longer live, so the key is free again.
    let spent = Retry {
        max_attempts: 1,
        ..Retry::default()
    };
    assert_eq!(
        s.fail_job(&claimed, "boom", &spent).await.unwrap(),
        Failed::Dead
    );
    let again = s.enqueue(keyed.clone()).await.unwrap();
    assert!(again.is_some(), "a dead job does not block its successor");
    let next = s.claim_job(&["k"], 30_000).await.unwrap().unwrap();
    assert!(s.complete_job(&next).await.unwrap());
    assert!(s.enqueue(keyed).await.unwrap().is_some(), "completed: free");
}

async fn an_expired_lease_is_taken_over_and_the_old_claim_is_fenced<H: Harness>(h: H) {
    let a = h.open().await;
    let b = h.open().await;
    a.enqueue(job("k", 0, 0)).await.unwrap();
    let first = a.claim_job(&["k"], 1).await.unwrap().unwrap();
    assert!(
        b.claim_job(&["k"], 30_000).await.unwrap().is_none(),
        "leased, not claimable"
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(b.recover_leases().await.unwrap(), 1);
    let second = b.claim_job(&["k"], 30_000).await.unwrap().unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempt, first.attempt + 1);
    // The first holder wakes up late: every write of its claim is refused.
    assert_eq!(a.heartbeat_job(&first, 30_000).await.unwrap(), Beat::Lost);
    assert!(!a.complete_job(&first).await.unwrap());
    assert_eq!(
        a.fail_job(&first, "late", &Retry::default()).await.unwrap(),
        Failed::Fenced
    );
    a.release_job(&first).await.unwrap();
    assert!(
        a.claim_job(&["k"], 30_000).await.unwrap().is_none(),
        "release was fenced too"
    );
    assert_eq!(b.heartbeat_job(&second, 30_000).await.unwrap(), Beat::Held);
    assert!(b.complete_job(&second).await.unwrap());
    assert!(!b.complete_job(&second).await.unwrap(), "completes once");

    // A cancel asked through another process reaches the holder's renewal.
    let of_run = NewJob {
        run_id: Some("run_x".into()),
        ..job("k", 0, 0)
    };
    a.enqueue(of_run).await.unwrap();
    assert!(
        !b.request_run_cancel("run_x").await.unwrap(),
        "nobody holds it yet"
    );
    let held = a.claim_job(&["k"], 30_000).await.unwrap().unwrap();
    assert_eq!(a.heartbeat_job(&held, 30_000).await.unwrap(), Beat::Held);
    assert!(b.request_run_cancel("run_x").await.unwrap());
    assert!(!b.request_run_cancel("run_unknown").await.unwrap());
    assert_eq!(
        a.heartbeat_job(&held, 30_000).await.unwrap(),
        Beat::CancelRequested
    );
    assert!(a.complete_job(&held).await.unwrap());
}

async fn failures_back_off_then_become_dead_letters<H: Harness>(h: H) {
    let s = h.open().await;
    s.enqueue(job("k", 0, 0)).await.unwrap();
    let retry = Retry {
        max_attempts: 2,
        base_ms: 60_000,
        max_ms: 600_000,
    };
    let j = s.claim_job(&["k"], 30_000).await.unwrap().unwrap();
    let before = cairn_core::now_ms();
    let Failed::Retrying { at } = s.fail_job(&j, "first", &retry).await.unwrap() else {
        panic!("the first failure retries");
    };
    assert!(at >= before + 60_000, "backs off by the base");
    assert!(
        s.claim_job(&["k"], 30_000).await.unwrap().is_none(),
        "not before its time"
    );
    // A second job with a short backoff: retried once, then dead.
    s.enqueue(job("q", 0, 0)).await.unwrap();
    let quick = Retry {
        max_attempts: 2,
        base_ms: 1,
        max_ms: 1,
    };
    let j = s.claim_job(&["q"], 30_000).await.unwrap().unwrap();
    assert!(matches!(
        s.fail_job(&j, "first", &quick).await.unwrap(),
        Failed::Retrying { .. }
    ));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let held = s.claim_job(&["q"], 30_000).await.unwrap().unwrap();
    assert_eq!(held.attempt, 2);
    assert_eq!(
        s.fail_job(&held, "second", &quick).await.unwrap(),
        Failed::Dead
    );
    assert!(
        s.claim_job(&["q"], 30_000).await.unwrap().is_none(),
        "the dead are not claimed"
    );
    let counts = s.job_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![("dead".to_string(), 1), ("ready".to_string(), 1)]
    );
    assert_eq!(retry.next_at(1, 0), Some(60_000));
    assert_eq!(retry.next_at(2, 0), None);
    let long = Retry {
        max_attempts: 50,
        base_ms: 1_000,
        max_ms: 5_000,
    };
    assert_eq!(long.next_at(40, 0), Some(5_000), "capped, no overflow");
}

async fn batches_claim_disjoint_sets_and_complete_together<H: Harness>(h: H) {
    let s = h.open().await;
    for i in 0..50 {
        s.enqueue(job("k", i, 0)).await.unwrap();
    }
    let first = s.claim_jobs(&["k"], 20, 30_000).await.unwrap();
    let second = s.claim_jobs(&["k"], 20, 30_000).await.unwrap();
    assert_eq!(first.len(), 20);
    assert_eq!(second.len(), 20);
    let p = |js: &[cairn_store::Job]| {
        js.iter()
            .map(|j| j.payload["n"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(p(&first), (0..20).collect::<Vec<_>>(), "in priority order");
    assert_eq!(p(&second), (20..40).collect::<Vec<_>>());
    assert_eq!(s.complete_jobs(&first).await.unwrap(), 20);
    assert_eq!(s.complete_jobs(&first).await.unwrap(), 0, "completes once");
    let rest = s.claim_jobs(&["k"], 100, 30_000).await.unwrap();
    assert_eq!(rest.len(), 10);
}

async fn many_claimers_never_share_a_job<H: Harness>(h: H) {
    let seed = h.open().await;
    const JOBS: usize = 300;
    for i in 0..JOBS {
        seed.enqueue(job("k", 0, i as i64)).await.unwrap();
    }
    let mut handles = Vec::new();
    for _ in 0..4 {
        let s = h.open().await;
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = s.claim_jobs(&["k"], 7, 30_000).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                assert_eq!(s.complete_jobs(&batch).await.unwrap(), batch.len() as u64);
                mine.extend(batch.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for handle in handles {
        for id in handle.await.unwrap() {
            assert!(seen.insert(id), "a job went to two claimers");
        }
    }
    assert_eq!(seen.len(), JOBS);
}

/// PostgreSQL only: an enqueue in one process wakes a claimer in another
/// through LISTEN/NOTIFY, long before its poll would, even when the
/// notification arrives between the claimer's look at the queue and its
/// wait (the claimer read the signal count first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wakes_claimers_in_other_processes() {
    let h = crate::postgres().await;
    let waiter = h.open().await;
    let other = h.open().await;
    // Let the listener subscribe.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let seen = waiter.jobs_seen();
    assert!(waiter.claim_job(&["k"], 30_000).await.unwrap().is_none());
    other.enqueue(job("k", 0, 0)).await.unwrap();
    // The NOTIFY lands before the wait begins.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        waiter.wait_for_jobs(seen, std::time::Duration::from_secs(600)),
    )
    .await
    .expect("the wake-up was lost (the 600 s poll would have been the only one)");
    // Waiting again without a new signal takes the poll.
    let seen = waiter.jobs_seen();
    let polled = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        waiter.wait_for_jobs(seen, std::time::Duration::from_secs(600)),
    )
    .await;
    assert!(polled.is_err(), "no signal, no wake-up");
}
