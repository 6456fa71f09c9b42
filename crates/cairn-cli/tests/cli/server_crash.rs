//! `kill -9` of `cairn serve` mid-run, then a restart on the same home: the
//! run completes, no journaled step is requested again, side effects happen
//! at most once. And SIGTERM: the running step finishes, the rest resumes.

use std::time::Duration;

use cairn_testkit::{FakeLlm, Reply, ServerProcess};
use serde_json::json;

use crate::api::{Api, start};
use crate::*;

async fn post(api: &Api, content: &str) -> String {
    api.session("s").await;
    let (status, run) = api
        .post("/api/v1/sessions/s/messages", json!({"content": content}))
        .await;
    assert_eq!(status, 202, "{run}");
    run["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_the_model_streams() {
    let h = home();
    let fake = FakeLlm::start();
    let mut server = start(&h, &fake);
    fake.push([Reply::Slow(
        Duration::from_millis(50),
        Box::new(Reply::Text("word ".repeat(400))),
    )]);
    let id = post(&Api::new(&server), "tell me a story").await;
    wait_for_requests(&fake, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill9();

    fake.push([Reply::text("the story")]);
    let server = start(&h, &fake);
    let done = Api::new(&server)
        .wait_run(&id, Duration::from_secs(30))
        .await;
    assert_eq!(done["run"]["status"], "completed", "{}", server.log());
    assert_eq!(done["run"]["output"], "the story");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].body["messages"], reqs[0].body["messages"],
        "the unanswered call was asked again, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_a_side_effecting_command_runs() {
    let h = home();
    let fake = FakeLlm::start();
    let mut server = start(&h, &fake);
    fake.push([Reply::tool(
        "exec",
        json!({"command": "echo ran >> side.txt; sleep 30"}),
    )]);
    let id = post(&Api::new(&server), "do it").await;
    let side = h.workspace().join("side.txt");
    let start_wait = std::time::Instant::now();
    while !side.exists() {
        assert!(start_wait.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();

    fake.push([Reply::text(
        "I do not know whether it finished; I will not repeat it.",
    )]);
    let server = start(&h, &fake);
    let done = Api::new(&server)
        .wait_run(&id, Duration::from_secs(30))
        .await;
    assert_eq!(done["run"]["status"], "completed", "{}", server.log());
    assert_eq!(
        std::fs::read_to_string(&side).unwrap(),
        "ran\n",
        "the command ran exactly once"
    );
    let reqs = fake.requests();
    assert_eq!(
        reqs.len(),
        2,
        "the journaled model response was not requested again"
    );
    assert!(
        reqs[1]
            .message_texts()
            .iter()
            .any(|t| t.contains("outcome unknown"))
    );
    let kinds: Vec<&str> = done["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "tool_call").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_two_steps() {
    let h = home();
    std::fs::create_dir_all(h.workspace()).unwrap();
    std::fs::write(h.workspace().join("a.txt"), "alpha").unwrap();
    let fake = FakeLlm::start();
    let mut server = start(&h, &fake);
    fake.push([
        Reply::tool("read_file", json!({"path": "a.txt"})),
        Reply::Delayed(Duration::from_secs(60), Box::new(Reply::text("never"))),
    ]);
    let id = post(&Api::new(&server), "read a.txt").await;
    wait_for_requests(&fake, 2);
    server.kill9();

    fake.push([Reply::text("it says alpha")]);
    let server = start(&h, &fake);
    let done = Api::new(&server)
        .wait_run(&id, Duration::from_secs(30))
        .await;
    assert_eq!(done["run"]["output"], "it says alpha", "{}", server.log());
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2].body["messages"], reqs[1].body["messages"]);
    let results = done["journal"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .count();
    assert_eq!(results, 1, "read_file's journaled result was reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_step_finish_and_the_rest_resumes() {
    let h = home();
    let fake = FakeLlm::start();
    let mut server = start(&h, &fake);
    fake.push([Reply::tool(
        "exec",
        json!({"command": "sleep 1; echo done > done.txt"}),
    )]);
    let id = post(&Api::new(&server), "work").await;
    wait_for_requests(&fake, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let code = server.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{}", server.log());
    assert!(
        h.workspace().join("done.txt").exists(),
        "the running command was allowed to finish"
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "no new step started after SIGTERM"
    );

    fake.push([Reply::text("finished")]);
    let server: ServerProcess = start(&h, &fake);
    let done = Api::new(&server)
        .wait_run(&id, Duration::from_secs(30))
        .await;
    assert_eq!(done["run"]["status"], "completed", "{}", server.log());
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[1]
            .message_texts()
            .iter()
            .any(|t| t.contains("exit code: 0"))
    );
}
