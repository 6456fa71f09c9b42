//! Old records are pruned (delivered channel messages, answered inbox rows,
//! fire records) while what is still owed stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::channel::InboundMessage;
use cairn_core::now_ms;
use cairn_store::{Accepted, NewOutbound, Store};

fn message(id: &str) -> InboundMessage {
    InboundMessage {
        channel: "telegram".into(),
        platform_id: id.into(),
        chat_id: "1".into(),
        thread: None,
        user_id: "9".into(),
        text: "hi".into(),
    }
}

#[tokio::test]
async fn pruning_forgets_what_is_done_and_keeps_what_is_owed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("cairn.db"))
        .await
        .unwrap();
    // A stranger's message: refused, its refusal queued, its text not kept;
    // more from them within the hour are counted and not answered again.
    let m = message("1:1");
    for _ in 0..3 {
        assert_eq!(
            store.accept_inbound(&m, None, Some("no")).await.unwrap(),
            Accepted::Refused
        );
    }
    assert_eq!(store.inbound_count("telegram").await.unwrap(), 0);
    assert_eq!(
        store.stranger_counts("telegram").await.unwrap(),
        [("9".to_string(), 3)]
    );
    let refusals = store.list_outbound(None, 10).await.unwrap();
    assert_eq!(refusals.iter().filter(|o| o.text == "no").count(), 1);
    let owed = NewOutbound {
        channel: "telegram".into(),
        chat_id: "2".into(),
        thread: None,
        parts: vec!["still owed".into()],
        run_id: None,
    };
    store.enqueue_outbound(&owed).await.unwrap();
    let items = store.list_outbound(None, 10).await.unwrap();
    let refusal = items.iter().find(|o| o.text == "no").unwrap();
    store.outbound_attempt(&refusal.id, Ok(())).await.unwrap();

    // Nothing is old yet.
    assert_eq!(
        store
            .prune_channel_history(now_ms() - 60_000)
            .await
            .unwrap(),
        0
    );
    // Later: the delivered refusal and the stranger's counter go; the
    // undelivered reply stays.
    let removed = store
        .prune_channel_history(now_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(store.stranger_counts("telegram").await.unwrap().is_empty());
    let left = store.list_outbound(None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].text, "still owed");
}
