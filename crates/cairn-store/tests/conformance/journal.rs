//! The journal: typed entries read back as written, and concurrent commits
//! of one run (parallel tool results) each get their own seq.

use cairn_core::{JournalPayload, RunEnd, RunStatus, ToolIntent, ToolResultEntry};
use cairn_store::{JournalStore, NewEntry, RunStore, StepCommit};

use crate::{Harness, both, queued_run};

both!(entries_read_back_typed_and_parallel_commits_get_distinct_seqs);

fn result(id: usize) -> NewEntry {
    NewEntry {
        ref_seq: Some(1),
        ref_entry: None,
        body: JournalPayload::ToolResult(ToolResultEntry {
            id: format!("call_{id}"),
            name: "read_file".into(),
            output: "x".into(),
            is_error: false,
            bytes: 1,
            duration_ms: 2,
            outcome_unknown: false,
        }),
    }
}

async fn entries_read_back_typed_and_parallel_commits_get_distinct_seqs<H: Harness>(h: H) {
    let s = h.open().await;
    let run = queued_run(&*s, "j1").await;
    let intent = NewEntry {
        ref_seq: None,
        ref_entry: None,
        body: JournalPayload::ToolCall(ToolIntent {
            id: "call_0".into(),
            name: "exec".into(),
            input: serde_json::json!({"cmd": "true"}),
            idempotent: false,
        }),
    };
    let answer = NewEntry {
        ref_seq: None,
        ref_entry: Some(0),
        ..result(0)
    };
    let seqs = s
        .commit_step(
            &run.id,
            None,
            StepCommit {
                entries: vec![intent.clone(), answer],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(seqs, vec![1, 2]);
    let mut tasks = Vec::new();
    for i in 1..=8 {
        let h = h.open().await;
        let run_id = run.id.clone();
        tasks.push(tokio::spawn(async move {
            h.commit_step(
                &run_id,
                None,
                StepCommit {
                    entries: vec![result(i)],
                    ..Default::default()
                },
            )
            .await
            .unwrap()
        }));
    }
    let mut all: Vec<i64> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (3..=10).collect::<Vec<_>>());
    let mut done = run.clone();
    done.status = RunStatus::Completed;
    let end = NewEntry {
        ref_seq: None,
        ref_entry: None,
        body: JournalPayload::RunEnd(RunEnd {
            status: RunStatus::Completed,
            error: None,
        }),
    };
    s.commit_step(
        &run.id,
        None,
        StepCommit {
            entries: vec![end],
            run: Some(&done),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let journal = s.journal(&run.id).await.unwrap();
    assert_eq!(journal.len(), 11);
    assert_eq!(journal[0].body, intent.body);
    assert_eq!(
        journal[1].ref_seq,
        Some(1),
        "a same-commit result points at its intent"
    );
    assert!(matches!(
        journal[10].body,
        JournalPayload::RunEnd(RunEnd {
            status: RunStatus::Completed,
            ..
        })
    ));
    assert_eq!(
        s.get_run(&run.id).await.unwrap().status,
        RunStatus::Completed
    );
}

both!(a_step_and_the_jobs_it_starts_commit_together);

async fn a_step_and_the_jobs_it_starts_commit_together<H: Harness>(h: H) {
    use cairn_store::{JobQueue, NewJob, SessionStore, StoreError};
    let s = h.open().await;
    let run = queued_run(&*s, "j2").await;
    let follow_up = |n: i64| NewJob {
        kind: "tool_call".into(),
        run_id: Some(run.id.clone()),
        payload: serde_json::json!({"n": n}),
        ..Default::default()
    };
    s.commit_step(
        &run.id,
        None,
        StepCommit {
            entries: vec![result(1)],
            jobs: vec![follow_up(1)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let job = s.claim_job(&["tool_call"], 30_000).await.unwrap().unwrap();
    assert_eq!(job.payload["n"], 1);
    // A step refused (its lease is stale) starts nothing.
    let mut lease = s
        .try_acquire_session("j2", &run.id, 30_000)
        .await
        .unwrap()
        .unwrap();
    let first = cairn_core::Message::user_text("first");
    let mut stale = lease.clone();
    s.commit_step(
        &run.id,
        Some(&mut lease),
        StepCommit {
            messages: vec![&first],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The version moved on; the clone taken before still has the old one.
    let m = cairn_core::Message::user_text("x");
    let err = s
        .commit_step(
            &run.id,
            Some(&mut stale),
            StepCommit {
                messages: vec![&m],
                jobs: vec![follow_up(2)],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { .. }), "{err}");
    assert!(s.claim_job(&["tool_call"], 30_000).await.unwrap().is_none());
}
