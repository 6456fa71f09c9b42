//! Channels on both backends: an inbound message recorded once (queued,
//! refused or a redelivery), its reply enqueued once when its run ends,
//! the outbox delivered in order per chat with retries and dead letters,
//! polling cursors, and history pruned.

use cairn_core::RunStatus;
use cairn_core::channel::InboundMessage;
use cairn_store::{Accepted, ChannelStore, NewOutbound, RunStore};

use crate::{Harness, both, end_run, new_run};

both!(
    an_inbound_message_is_recorded_once_and_replied_once,
    the_outbox_delivers_in_order_per_chat_with_retries,
    cursors_and_history,
);

fn said(id: &str, user: &str, text: &str) -> InboundMessage {
    InboundMessage {
        channel: "telegram".into(),
        platform_id: id.into(),
        chat_id: "42".into(),
        thread: None,
        user_id: user.into(),
        text: text.into(),
    }
}

fn out(chat: &str, parts: &[&str]) -> NewOutbound {
    NewOutbound {
        channel: "telegram".into(),
        chat_id: chat.into(),
        thread: None,
        parts: parts.iter().map(ToString::to_string).collect(),
        run_id: None,
    }
}

async fn an_inbound_message_is_recorded_once_and_replied_once<H: Harness>(h: H) {
    let s = h.open().await;
    let hello = said("1", "alice", "hello");
    let mut run = new_run(&hello.session_id());
    let first = s.accept_inbound(&hello, Some(&run), None).await.unwrap();
    assert!(matches!(first, Accepted::Queued { run_id } if run_id == run.id));
    let again = s
        .accept_inbound(&hello, Some(&new_run("x")), None)
        .await
        .unwrap();
    assert!(matches!(again, Accepted::Duplicate));
    let stranger = said("2", "mallory", "let me in");
    let refused = s
        .accept_inbound(&stranger, None, Some("not allowed"))
        .await
        .unwrap();
    assert!(matches!(refused, Accepted::Refused));
    assert_eq!(
        s.stranger_counts("telegram").await.unwrap(),
        vec![("mallory".to_string(), 1)]
    );
    // A stranger's message is counted, its text not kept.
    assert_eq!(s.inbound_count("telegram").await.unwrap(), 1);
    assert_eq!(
        s.inbound_for_run(&run.id)
            .await
            .unwrap()
            .unwrap()
            .platform_id,
        "1"
    );
    assert!(s.inbound_for_run("run_none").await.unwrap().is_none());

    // Started again under another run: the message waits for that one.
    let retry = new_run(&hello.session_id());
    s.create_run(&retry).await.unwrap();
    s.repoint_inbound(&run.id, &retry.id).await.unwrap();
    assert!(s.inbound_for_run(&run.id).await.unwrap().is_none());
    assert!(
        s.awaiting_replies(10).await.unwrap().is_empty(),
        "not ended yet"
    );
    run.status = RunStatus::Cancelled;
    end_run(&*s, &run).await;
    let mut retry = retry;
    retry.status = RunStatus::Completed;
    retry.output = Some("hi alice".into());
    end_run(&*s, &retry).await;
    let waiting = s.awaiting_replies(10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].run.id, retry.id);
    let reply = NewOutbound {
        run_id: Some(retry.id.clone()),
        ..out("42", &["hi alice"])
    };
    assert!(s.enqueue_reply(&waiting[0].message, &reply).await.unwrap());
    assert!(
        !s.enqueue_reply(&waiting[0].message, &reply).await.unwrap(),
        "once"
    );
    assert!(s.awaiting_replies(10).await.unwrap().is_empty());
    let sent = s.list_outbound(Some("telegram"), 10).await.unwrap();
    let texts: Vec<_> = sent.iter().map(|o| o.text.as_str()).collect();
    assert!(
        texts.contains(&"hi alice") && texts.contains(&"not allowed"),
        "{texts:?}"
    );
}

async fn the_outbox_delivers_in_order_per_chat_with_retries<H: Harness>(h: H) {
    let s = h.open().await;
    s.enqueue_outbound(&out("a", &["a1", "a2"])).await.unwrap();
    s.enqueue_outbound(&out("b", &["b1"])).await.unwrap();
    let now = cairn_core::now_ms();
    let due = s.due_outbound("telegram", now, 10).await.unwrap();
    let texts: Vec<_> = due.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(texts, vec!["a1", "b1"], "a2 waits for a1");
    let (a1, b1) = (due[0].id.clone(), due[1].id.clone());
    // a1 fails once: retried later, a2 still waits.
    s.outbound_attempt(&a1, Err(("502".into(), Some(now + 60_000))))
        .await
        .unwrap();
    let due = s.due_outbound("telegram", now, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|o| o.text.as_str()).collect::<Vec<_>>(),
        vec!["b1"]
    );
    let later = s.due_outbound("telegram", now + 60_000, 10).await.unwrap();
    assert_eq!(later[0].text, "a1");
    assert_eq!(later[0].attempts, 1);
    assert_eq!(later[0].last_error.as_deref(), Some("502"));
    s.outbound_attempt(&a1, Ok(())).await.unwrap();
    // b1 is refused for good: dead, not retried.
    s.outbound_attempt(&b1, Err(("chat not found".into(), None)))
        .await
        .unwrap();
    let due = s.due_outbound("telegram", now + 60_000, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|o| o.text.as_str()).collect::<Vec<_>>(),
        vec!["a2"]
    );
    let mut counts = s.outbound_counts().await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            ("dead".to_string(), 1),
            ("pending".to_string(), 1),
            ("sent".to_string(), 1)
        ]
    );
    assert_eq!(s.list_outbound(None, 10).await.unwrap().len(), 3);
    assert!(s.list_outbound(Some("slack"), 10).await.unwrap().is_empty());
}

async fn cursors_and_history<H: Harness>(h: H) {
    let s = h.open().await;
    assert_eq!(s.channel_cursor("telegram").await.unwrap(), None);
    s.set_channel_cursor("telegram", "1001").await.unwrap();
    s.set_channel_cursor("telegram", "1002").await.unwrap();
    assert_eq!(
        s.channel_cursor("telegram").await.unwrap().as_deref(),
        Some("1002")
    );
    assert_eq!(s.channel_cursor("slack").await.unwrap(), None);
    let stranger = said("9", "mallory", "hi");
    s.accept_inbound(&stranger, None, Some("no")).await.unwrap();
    let [item] = &s.list_outbound(None, 10).await.unwrap()[..] else {
        panic!("one refusal queued");
    };
    s.outbound_attempt(&item.id, Ok(())).await.unwrap();
    let future = cairn_core::now_ms() + 60_000;
    let gone = s.prune_channel_history(future).await.unwrap();
    assert!(gone >= 1, "{gone}");
    assert!(
        s.list_outbound(None, 10).await.unwrap().is_empty(),
        "sent replies go"
    );
}
