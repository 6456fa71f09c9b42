//! Two people on one agent, in one group chat: what one told the agent
//! never reaches the other's prompt, tools or searches, and neither sees or
//! cancels the other's schedules.

use std::time::{Duration, Instant};

use cairn_testkit::{FakeLlm, FakeTelegram, Reply, ServerProcess};
use serde_json::json;

use crate::*;

const SECRET: &str = "blue-falcon-88";

fn wait_for_reply(tg: &FakeTelegram, n: usize) {
    let start = Instant::now();
    while tg.sent().len() < n {
        assert!(start.elapsed() < Duration::from_secs(30), "no reply {n}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A home, a fake model and a fake Telegram open to everyone.
fn group_chat() -> (cairn_testkit::CairnHome, FakeLlm, FakeTelegram) {
    let h = home();
    let fake = FakeLlm::start();
    let tg = FakeTelegram::start("T");
    h.write_config(&format!(
        "[channels.telegram]\ntoken = \"T\"\napi_url = \"{}\"\nallow = [\"*\"]\npoll_timeout_s = 1\n",
        tg.url()
    ));
    (h, fake, tg)
}

/// Everything a request shows the model: system prompt and messages.
fn seen(r: &cairn_testkit::RecordedRequest) -> String {
    format!("{}\n{}", r.body["system"], r.message_texts().join("\n"))
}

#[test]
fn two_people_in_one_group_chat_never_see_each_others_facts_or_schedules() {
    let (h, fake, tg) = group_chat();
    let server = ServerProcess::start(h.anthropic(&fake));
    let group = -9000;

    // Alice tells the agent a secret and asks for a reminder.
    fake.push([
        Reply::tool(
            "memory_save",
            json!({"text": format!("Alice's PIN hint is {SECRET}.")}),
        ),
        Reply::tool(
            "schedule_create",
            json!({"prompt": format!("remind alice: {SECRET}"), "cron": "0 9 * * *"}),
        ),
        Reply::text("noted"),
    ]);
    tg.user_says(
        group,
        1,
        "alice",
        &format!("remember my PIN hint is {SECRET} and remind me daily"),
    );
    wait_for_reply(&tg, 1);
    let facts = json(&h, &["memory", "list"]);
    let fact_id = facts[0]["id"].as_str().unwrap().to_string();
    assert_eq!(facts[0]["user_id"], "telegram:1", "{facts}");
    let schedules = json(&h, &["schedule", "list"]);
    let schedule_id = schedules[0]["id"].as_str().unwrap().to_string();
    assert_eq!(schedules[0]["user_id"], "telegram:1", "{schedules}");

    // Bob, in the same chat, asks the same question and tries everything.
    let before = fake.requests().len();
    fake.push([
        Reply::tool("memory_search", json!({"query": "PIN hint"})),
        Reply::tool("schedule_list", json!({})),
        Reply::tool("memory_forget", json!({"id": fact_id})),
        Reply::tool("schedule_cancel", json!({"id": schedule_id})),
        Reply::text("nothing here"),
    ]);
    tg.user_says(group, 2, "bob", "what is my PIN hint? remember my PIN hint");
    wait_for_reply(&tg, 2);
    let bobs: Vec<_> = fake.requests()[before..].to_vec();
    assert_eq!(bobs.len(), 5);
    // The group's conversation is shared (Bob was in the chat); what the
    // agent remembers for Alice is not.
    for r in &bobs {
        let system = r.body["system"].to_string();
        assert!(!system.contains(SECRET), "recalled for Bob: {system}");
    }
    let results: Vec<String> = bobs[1..]
        .iter()
        .map(|r| r.message_texts().last().cloned().unwrap_or_default())
        .collect();
    for r in &results {
        assert!(!r.contains(SECRET), "a tool showed Bob Alice's secret: {r}");
    }
    assert!(
        results[0].contains("no saved facts match"),
        "{}",
        results[0]
    );
    assert!(results[1].contains("no schedules"), "{}", results[1]);
    assert!(
        results[2].contains("not found") || results[2].contains("no memory"),
        "{}",
        results[2]
    );
    assert!(
        results[3].contains("not one of your schedules"),
        "{}",
        results[3]
    );
    // Both still exist.
    assert_eq!(json(&h, &["memory", "list"]).as_array().unwrap().len(), 1);
    assert_eq!(json(&h, &["schedule", "list"]).as_array().unwrap().len(), 1);

    // Asked on Bob's behalf, the CLI and the API find nothing of Alice's
    // either (without --user they are the operator's view of everything).
    let hits = json(
        &h,
        &["memory", "search", "PIN hint", "--user", "telegram:2"],
    );
    assert_eq!(hits.as_array().map(std::vec::Vec::len), Some(0), "{hits}");
    let hits = json(
        &h,
        &["memory", "search", "PIN hint", "--user", "telegram:1"],
    );
    assert_eq!(hits.as_array().map(std::vec::Vec::len), Some(1), "{hits}");
    let api = crate::api::Api::new(&server);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, hits) =
        rt.block_on(api.get("/api/v1/agents/default/memories/search?q=PIN%20hint&user=telegram:2"));
    assert_eq!(status, 200);
    assert_eq!(hits.as_array().map(std::vec::Vec::len), Some(0), "{hits}");
    let (_, listed) = rt.block_on(api.get("/api/v1/agents/default/memories?user=telegram:2"));
    assert_eq!(
        listed.as_array().map(std::vec::Vec::len),
        Some(0),
        "{listed}"
    );

    // In his own chat Bob sees nothing of it at all.
    let before = fake.requests().len();
    fake.push([
        Reply::tool("memory_search", json!({"query": "Alice PIN hint falcon"})),
        Reply::text("no idea"),
    ]);
    tg.user_says(2, 2, "bob", "what is Alice's PIN hint? blue falcon?");
    wait_for_reply(&tg, 3);
    for r in &fake.requests()[before..] {
        assert!(!seen(r).contains(SECRET), "{}", seen(r));
    }

    // Alice asking again does get her fact in the prompt: the scope is hers.
    let before = fake.requests().len();
    fake.push([Reply::text("it is in your notes")]);
    tg.user_says(group, 1, "alice", "what is my PIN hint?");
    wait_for_reply(&tg, 4);
    let alices = &fake.requests()[before..];
    let system = alices[0].body["system"].to_string();
    assert!(system.contains(SECRET), "not recalled for Alice: {system}");
    let _: Option<Value> = None;
}

#[test]
fn another_persons_message_waits_for_a_turn_of_its_own() {
    let (h, fake, tg) = group_chat();
    fake.push([
        Reply::tool(
            "exec",
            json!({"command": "touch started; sleep 2; echo built"}),
        ),
        Reply::text("alice: built"),
        Reply::text("bob: here are your schedules"),
    ]);
    let _server = ServerProcess::start(h.anthropic(&fake));
    let group = -9100;
    tg.user_says(group, 1, "alice", "build the site");
    let start = Instant::now();
    while !h.workspace().join("started").exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "no command");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Bob speaks while Alice's turn runs: his message must not run as hers.
    tg.user_says(group, 2, "bob", "cancel every schedule of mine");
    tg.user_says(group, 1, "alice", "and deploy it");
    wait_for_reply(&tg, 2);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3, "bob got a turn of his own");
    let alices = reqs[1].message_texts().join("\n");
    assert!(alices.contains("and deploy it"), "{alices}");
    assert!(!alices.contains("cancel every schedule"), "{alices}");
    assert!(seen(&reqs[2]).contains("cancel every schedule"));
    let runs = json(&h, &["runs", "list"]);
    let bobs = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["input"] == "cancel every schedule of mine")
        .unwrap();
    assert_eq!(bobs["status"], "completed", "{bobs}");
    assert!(
        !bobs["output"]
            .as_str()
            .unwrap_or("")
            .contains("answered together"),
        "{bobs}"
    );
}
