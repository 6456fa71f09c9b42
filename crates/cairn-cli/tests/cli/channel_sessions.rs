//! One conversation, one session: chats whose names differ only in the
//! characters an id cannot hold, or in where chat and thread split, never
//! share a session or its history.

use std::time::{Duration, Instant};

use cairn_testkit::{FakeLlm, Reply, ServerProcess};
use serde_json::{Value, json};

use crate::api::Api;
use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_chat_names_get_sessions_of_their_own() {
    let h = home();
    let fake = FakeLlm::start();
    h.write_config("[channels.webhook.ops]\nsecret = \"whsec\"\nallow = [\"*\"]\n");
    let server = ServerProcess::start(h.anthropic(&fake));
    let api = Api::new(&server);
    let post = |id: &str, chat: &str, thread: Option<&str>, text: &str| {
        let body = json!({"id": id, "chat": chat, "thread": thread, "user": "u", "text": text});
        let api = &api;
        async move {
            let r = api.signed_webhook("ops", "whsec", &body).await;
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()
        }
    };
    let chats = [
        ("room/1", None, "SECRET-A the launch code"),
        ("room_1", None, "what did I tell you?"),
        ("proj", Some("q1"), "SECRET-B the budget"),
        ("proj-q1", None, "and what about the budget?"),
    ];
    let mut sessions = Vec::new();
    for (i, (chat, thread, text)) in chats.iter().enumerate() {
        fake.push([Reply::text("ok")]);
        let v = post(&format!("m{i}"), chat, *thread, text).await;
        sessions.push(v["session_id"].as_str().unwrap().to_string());
        let start = Instant::now();
        while fake.requests().len() <= i {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let unique: std::collections::HashSet<&String> = sessions.iter().collect();
    assert_eq!(unique.len(), chats.len(), "{sessions:?}");
    let reqs = fake.requests();
    let second = reqs[1].message_texts().join("\n");
    assert!(!second.contains("SECRET-A"), "{second}");
    let fourth = reqs[3].message_texts().join("\n");
    assert!(!fourth.contains("SECRET-B"), "{fourth}");
    // A plain chat keeps the readable id it always had.
    assert_eq!(sessions[2], "webhook.ops-proj-q1");
}
