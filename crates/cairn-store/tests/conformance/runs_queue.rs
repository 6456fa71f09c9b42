//! The rest of runs, sessions, the queue and memories on both backends: a
//! session's context after a compaction, its runs' messages, seeding a new
//! session, lease renewal, the backlog of a session claimed oldest first,
//! provider cooldowns, what `cairn status` and the watchdog read, and bulk
//! memory saves.

use cairn_core::{JournalPayload, Message, RunStatus, ToolIntent};
use cairn_store::{
    Backend, ChannelStore, JobQueue, JournalStore, MemoryStore, NewCompaction, NewEntry, RunStore,
    SessionStore, StepCommit, StoreError, kinds,
};

use crate::{Harness, both, end_run, memories::fact, queued_run};

both!(
    a_sessions_context_messages_and_lease,
    a_sessions_backlog_and_provider_cooldowns,
    status_counts_and_the_watchdogs_view,
    memories_saved_together_and_an_agents_messages,
    health_and_description,
);

async fn a_sessions_context_messages_and_lease<H: Harness>(h: H) {
    let s = h.open().await;
    // A new session takes the history a client sends, once.
    s.ensure_session("seeded", "default").await.unwrap();
    let history = [Message::user_text("earlier"), Message::user_text("more")];
    assert!(s.seed_messages("seeded", &history).await.unwrap());
    assert!(!s.seed_messages("seeded", &history).await.unwrap());
    assert_eq!(s.messages("seeded").await.unwrap().len(), 2);

    let run = queued_run(&*s, "ctx").await;
    let mut lease = s
        .try_acquire_session("ctx", &run.id, 30_000)
        .await
        .unwrap()
        .unwrap();
    s.renew_session_lease(&lease, 30_000).await.unwrap();
    let texts = ["one", "two", "three"].map(Message::user_text);
    s.commit_step(
        &run.id,
        Some(&mut lease),
        StepCommit {
            messages: texts.iter().collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mine = s.run_messages("ctx", &run.id).await.unwrap();
    assert_eq!(mine.len(), 3);
    assert!(s.run_messages("ctx", "run_other").await.unwrap().is_empty());
    let before = s.session_context("ctx").await.unwrap();
    assert_eq!((before.summary, before.messages.len()), (None, 3));
    let through = before.messages[1].0;
    s.commit_step(
        &run.id,
        Some(&mut lease),
        StepCommit {
            compaction: Some(NewCompaction {
                through_seq: through,
                summary: "one and two".into(),
                tokens_before: 100,
                tokens_after: 10,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let after = s.session_context("ctx").await.unwrap();
    assert_eq!(after.summary.as_deref(), Some("one and two"));
    assert_eq!(after.through_seq, through);
    assert_eq!(after.messages.len(), 1);
    assert_eq!(after.messages[0].1.text(), "three");
    assert_eq!(s.compaction_count("ctx").await.unwrap(), 1);
    assert_eq!(s.messages("ctx").await.unwrap().len(), 3, "originals kept");
    assert_eq!(s.session_user("ctx").await.unwrap(), None);
    let listed = s.list_sessions(10).await.unwrap();
    assert_eq!(listed[0].id, "ctx", "most recently changed first");
    assert_eq!(listed.len(), 2);
    // A lease taken over (or ended) no longer renews.
    s.release_session(&lease).await.unwrap();
    let err = s.renew_session_lease(&lease, 30_000).await.unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { .. }), "{err}");
}

async fn a_sessions_backlog_and_provider_cooldowns<H: Harness>(h: H) {
    let s = h.open().await;
    let first = queued_run(&*s, "bk").await;
    // A later turn of the same session, queued behind it.
    queued_run(&*s, "bk").await;
    queued_run(&*s, "elsewhere").await;
    let job = s
        .claim_session_backlog("bk", 30_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.run_id.as_deref(),
        Some(first.id.as_str()),
        "oldest first"
    );
    // Handed back until later (a cooldown): turns go in order, so the
    // later turn is not claimed past it meanwhile.
    let later = cairn_core::now_ms() + 60_000;
    s.release_job_until(&job, later).await.unwrap();
    assert!(
        s.claim_session_backlog("bk", 30_000)
            .await
            .unwrap()
            .is_none()
    );
    // Another session's backlog is its own.
    let other = s.claim_session_backlog("elsewhere", 30_000).await.unwrap();
    assert!(other.is_some());

    let now = cairn_core::now_ms();
    assert!(
        s.provider_cooldown("anthropic", now)
            .await
            .unwrap()
            .is_none()
    );
    s.set_provider_cooldown("anthropic", now + 5_000, "429 slow down")
        .await
        .unwrap();
    let (until, why) = s
        .provider_cooldown("anthropic", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((until, why.as_str()), (now + 5_000, "429 slow down"));
    assert!(
        s.provider_cooldown("anthropic", now + 5_001)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.provider_cooldown("openai", now).await.unwrap().is_none());
    let all = s.provider_cooldowns(now).await.unwrap();
    assert_eq!(
        all,
        vec![(
            "anthropic".to_string(),
            now + 5_000,
            "429 slow down".to_string()
        )]
    );
}

async fn status_counts_and_the_watchdogs_view<H: Harness>(h: H) {
    let s = h.open().await;
    let mut done = queued_run(&*s, "st1").await;
    let mut working = queued_run(&*s, "st2").await;
    queued_run(&*s, "st2").await;
    done.status = RunStatus::Completed;
    done.cost_usd = 0.5;
    end_run(&*s, &done).await;
    working.status = RunStatus::Running;
    s.update_run(&working).await.unwrap();
    let intent = JournalPayload::ToolCall(ToolIntent {
        id: "c1".into(),
        name: "exec".into(),
        input: serde_json::json!({"command": "make", "timeout_s": 900}),
        idempotent: false,
    });
    s.commit_step(
        &working.id,
        None,
        StepCommit {
            entries: vec![NewEntry {
                ref_seq: None,
                ref_entry: None,
                body: intent,
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let progress = s.running_progress().await.unwrap();
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].run_id, working.id);
    assert_eq!(progress[0].in_flight.len(), 1);
    assert_eq!(progress[0].in_flight[0].input["timeout_s"], 900);
    let (sessions, spent) = s.totals().await.unwrap();
    assert_eq!(sessions, 2);
    assert!((spent - 0.5).abs() < 1e-9);
    let mut counts = s.run_counts().await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            ("completed".to_string(), 1),
            ("queued".to_string(), 1),
            ("running".to_string(), 1)
        ]
    );
    // One job per run (an ended run's job is the executor's to complete).
    let jobs: i64 = s.job_counts().await.unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(jobs, 3);
    assert!(
        s.claim_job(&[kinds::ADVANCE_RUN], 1)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.outbound_counts().await.unwrap(), vec![]);
}

async fn memories_saved_together_and_an_agents_messages<H: Harness>(h: H) {
    let s = h.open().await;
    assert!(!s.has_memories("scribe").await.unwrap());
    let saved = s
        .save_memories(&[
            fact("scribe", None, "the sky is blue"),
            fact("scribe", Some("alice"), "alice likes tea"),
        ])
        .await
        .unwrap();
    assert_eq!(saved.len(), 2);
    assert!(s.has_memories("scribe").await.unwrap());
    assert!(!s.has_memories("other").await.unwrap());
    s.ensure_session("sc", "scribe").await.unwrap();
    assert!(
        s.seed_messages("sc", &[Message::user_text("hello scribe")])
            .await
            .unwrap()
    );
    let said = s.agent_messages("scribe").await.unwrap();
    assert_eq!(said.len(), 1);
    assert_eq!(said[0].0, "sc");
    assert_eq!(said[0].3.text(), "hello scribe");
    assert!(s.agent_messages("other").await.unwrap().is_empty());
}

async fn health_and_description<H: Harness>(h: H) {
    let s = h.open().await;
    s.ping().await.unwrap();
    assert!(s.schema_version().await.unwrap() >= 13);
    let said = s.describe();
    // Logged and shown by `doctor`: never the password (the suite's
    // server is reached with one; see scripts/test.sh).
    let admin = cairn_testkit::postgres_admin_url();
    let password = admin
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(creds, _)| creds.split_once(':'))
        .map(|(_, pw)| pw.to_string());
    if let Some(pw) = password {
        assert!(!said.contains(&format!(":{pw}@")), "{said}");
    }
    assert!(!said.is_empty());
    let seen = s.jobs_seen();
    s.wait_for_jobs(seen, std::time::Duration::from_millis(10))
        .await;
}
