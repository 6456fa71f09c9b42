//! A run ends once, with its end in its journal, whoever ends it: a step
//! commit (the runtime), a withdrawal from the queue, a message absorbed
//! into the turn that held its session. Nothing changes a run after.

use cairn_core::channel::InboundMessage;
use cairn_core::{JournalPayload, RunRecord, RunStatus};
use cairn_store::{
    ChannelStore, JobQueue, JournalStore, RunStore, SessionStore, StoreError, kinds,
};

use crate::{Harness, Tables, both, end_run, queued_run, run_end_step};

both!(
    a_run_ends_once_and_its_end_frees_its_session,
    a_withdrawn_run_ends_in_its_journal,
    an_absorbed_run_ends_in_its_journal,
);

/// The ends in a run's journal.
async fn ends<S: Tables>(s: &S, run_id: &str) -> Vec<cairn_core::RunEnd> {
    s.journal(run_id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            JournalPayload::RunEnd(end) => Some(end),
            _ => None,
        })
        .collect()
}

async fn a_run_ends_once_and_its_end_frees_its_session<H: Harness>(h: H) {
    let s = h.open().await;
    let first = queued_run(&*s, "e1").await;
    let second = queued_run(&*s, "e1").await;
    let lease = s
        .try_acquire_session("e1", &first.id, 30_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.run_id(), first.id);
    let mut done = first.clone();
    done.status = RunStatus::Failed;
    done.error = Some("boom".into());
    // Ended without giving the session back: the end frees it.
    end_run(&*s, &done).await;
    assert!(
        s.try_acquire_session("e1", &second.id, 30_000)
            .await
            .unwrap()
            .is_some(),
        "the session of an ended run is free"
    );
    let again = RunRecord {
        status: RunStatus::Completed,
        error: None,
        ..done.clone()
    };
    let err = s
        .commit_step(&first.id, None, run_end_step(&again))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RunEnded { .. }), "{err}");
    let mut running = done.clone();
    running.status = RunStatus::Running;
    let err = s.update_run(&running).await.unwrap_err();
    assert!(matches!(err, StoreError::RunEnded { .. }), "{err}");
    assert_eq!(
        s.get_run(&first.id).await.unwrap().status,
        RunStatus::Failed
    );
    let ends = ends(&*s, &first.id).await;
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].error.as_deref(), Some("boom"));
}

async fn a_withdrawn_run_ends_in_its_journal<H: Harness>(h: H) {
    let s = h.open().await;
    let run = queued_run(&*s, "e2").await;
    assert!(
        s.cancel_queued_run(&run.id, "changed my mind")
            .await
            .unwrap()
    );
    assert!(!s.cancel_queued_run(&run.id, "twice").await.unwrap());
    let ends = ends(&*s, &run.id).await;
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].status, RunStatus::Cancelled);
    assert_eq!(ends[0].error.as_deref(), Some("changed my mind"));
}

async fn an_absorbed_run_ends_in_its_journal<H: Harness>(h: H) {
    let s = h.open().await;
    let said = |id: &str, text: &str| InboundMessage {
        channel: "telegram".into(),
        platform_id: id.into(),
        chat_id: "42".into(),
        thread: None,
        user_id: "u1".into(),
        text: text.into(),
    };
    let holder = crate::new_run("telegram-42");
    s.accept_inbound(&said("1", "hello"), Some(&holder), None)
        .await
        .unwrap();
    let mut joiner = crate::new_run("telegram-42");
    joiner.input = "and another thing".into();
    joiner.created_at += 1;
    s.accept_inbound(&said("2", "and another thing"), Some(&joiner), None)
        .await
        .unwrap();
    let job = s
        .claim_job(&[kinds::ADVANCE_RUN], 30_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.run_id.as_deref(), Some(holder.id.as_str()));
    let mut lease = s
        .try_acquire_session("telegram-42", &holder.id, 30_000)
        .await
        .unwrap()
        .unwrap();
    let texts = s.absorb_queued_messages(&mut lease).await.unwrap();
    assert_eq!(texts, vec!["and another thing".to_string()]);
    let absorbed = s.get_run(&joiner.id).await.unwrap();
    assert_eq!(absorbed.status, RunStatus::Completed);
    let ends = ends(&*s, &joiner.id).await;
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].status, RunStatus::Completed);
}
