//! Sessions: the run lease, compare-and-swap on the version, runs and
//! their jobs created together.

use cairn_core::{Message, RunStatus};
use cairn_store::{JobQueue, JournalStore, RunStore, SessionStore, StepCommit, StoreError, kinds};

use crate::{Harness, both, queued_run};

both!(
    one_run_holds_a_session_and_a_stale_version_writes_nothing,
    a_message_append_without_the_lease_is_its_own_error,
    a_run_is_created_with_its_job_and_found_by_prefix,
    a_queued_run_can_be_cancelled_until_it_is_claimed,
    the_conversations_of_a_channel_are_listed_once_each,
);

async fn one_run_holds_a_session_and_a_stale_version_writes_nothing<H: Harness>(h: H) {
    let s = h.open().await;
    let other = h.open().await;
    let first = queued_run(&*s, "s1").await;
    let second = queued_run(&*s, "s1").await;
    assert!(
        other
            .try_acquire_session("s1", &second.id, 30_000)
            .await
            .unwrap()
            .is_none(),
        "a later run waits for the earlier one"
    );
    let mut lease = s
        .try_acquire_session("s1", &first.id, 30_000)
        .await
        .unwrap()
        .unwrap();
    let mut stale = lease.clone();
    let hello = Message::user_text("hello");
    s.commit_step(
        &first.id,
        Some(&mut lease),
        StepCommit {
            messages: vec![&hello],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        lease.version(),
        stale.version() + 1,
        "the append bumps the version"
    );
    let lost = Message::user_text("lost");
    let err = other
        .commit_step(
            &first.id,
            Some(&mut stale),
            StepCommit {
                messages: vec![&lost],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { .. }), "{err}");
    let kept = s.messages("s1").await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].text(), "hello");
    s.release_session(&lease).await.unwrap();
    let mut done = first.clone();
    done.status = RunStatus::Completed;
    let err = s.update_run(&done).await.unwrap_err();
    assert!(
        matches!(err, StoreError::EndNotJournaled { .. }),
        "a run ends only with its journal entry: {err}"
    );
    crate::end_run(&*s, &done).await;
    assert!(
        other
            .try_acquire_session("s1", &second.id, 30_000)
            .await
            .unwrap()
            .is_some()
    );
}

async fn a_message_append_without_the_lease_is_its_own_error<H: Harness>(h: H) {
    let s = h.open().await;
    let run = queued_run(&*s, "s2").await;
    let m = Message::user_text("x");
    let err = s
        .commit_step(
            &run.id,
            None,
            StepCommit {
                messages: vec![&m],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseRequired { .. }), "{err}");
    assert!(s.messages("s2").await.unwrap().is_empty());
}

async fn a_run_is_created_with_its_job_and_found_by_prefix<H: Harness>(h: H) {
    let s = h.open().await;
    let run = queued_run(&*s, "s3").await;
    let job = s
        .claim_job(&[kinds::ADVANCE_RUN], 30_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.run_id.as_deref(), Some(run.id.as_str()));
    let found = s.get_run(&run.id[4..16]).await.unwrap();
    assert_eq!(found, run);
    assert!(matches!(
        s.get_run("nope").await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert_eq!(s.list_runs(Some("s3"), 10).await.unwrap(), vec![run]);
    assert_eq!(s.get_session("s3").await.unwrap().agent, "default");
    let wrong = s.ensure_session("s3", "another").await.unwrap_err();
    assert!(matches!(wrong, StoreError::WrongAgent { .. }), "{wrong}");
}

async fn a_queued_run_can_be_cancelled_until_it_is_claimed<H: Harness>(h: H) {
    let s = h.open().await;
    let run = queued_run(&*s, "s4").await;
    assert!(
        s.cancel_queued_run(&run.id, "changed my mind")
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_run(&run.id).await.unwrap().status,
        RunStatus::Cancelled
    );
    assert!(
        s.claim_job(&[kinds::ADVANCE_RUN], 30_000)
            .await
            .unwrap()
            .is_none()
    );
    let claimed = queued_run(&*s, "s5").await;
    s.claim_job(&[kinds::ADVANCE_RUN], 30_000)
        .await
        .unwrap()
        .unwrap();
    assert!(!s.cancel_queued_run(&claimed.id, "too late").await.unwrap());
}

async fn the_conversations_of_a_channel_are_listed_once_each<H: Harness>(h: H) {
    use cairn_store::ChannelStore;
    let s = h.open().await;
    let said = |id: &str, chat: &str, thread: Option<&str>| cairn_core::channel::InboundMessage {
        channel: "webhook.ci".into(),
        platform_id: id.into(),
        chat_id: chat.into(),
        thread: thread.map(str::to_string),
        user_id: "u1".into(),
        text: "hi".into(),
    };
    for (id, chat, thread) in [
        ("1", "room/1", None),
        ("2", "room/1", None),
        ("3", "room_1", Some("t")),
    ] {
        let run = crate::new_run(&format!("s{id}"));
        s.accept_inbound(&said(id, chat, thread), Some(&run), None)
            .await
            .unwrap();
    }
    let mut found = s.inbound_conversations("webhook.ci").await.unwrap();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("room/1".to_string(), None),
            ("room_1".to_string(), Some("t".to_string()))
        ]
    );
    assert!(s.inbound_conversations("slack").await.unwrap().is_empty());
}
