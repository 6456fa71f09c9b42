//! The runtime below the CLI: a runtime, the fake LLM over real HTTP and a
//! temporary store of each backend. A run left by a crash between a tool
//! call's intent and its result resumes from the journal: a side-effecting
//! call is not run again (the model is told its outcome is unknown), an
//! idempotent one is, and so is a keyed one (a cluster tool job), under the
//! same key, so the tool itself makes the repeat take effect once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::{
    AgentSpec, ContentBlock, JournalPayload, Message, ModelCallIntent, ModelOutcome, ModelResponse,
    Role, StopReason, ToolIntent, Usage,
};
use cairn_runtime::{Runtime, TurnRequest};
use cairn_store::{NewEntry, StepCommit, Store};
use cairn_testkit::{FakeLlm, Reply};

mod support;
use support::{TestStore, drive_next, drive_next_as, runtime};

fn entry(ref_entry: Option<usize>, body: JournalPayload) -> NewEntry {
    NewEntry {
        ref_seq: None,
        ref_entry,
        body,
    }
}

/// Leaves the store as a process killed while `tool` ran would: the
/// user's message, the model's answer asking for the call and its intent
/// committed, no result. Returns the run's id.
async fn crashed_during(
    rt: &Runtime,
    tool: &str,
    input: serde_json::Value,
    idempotent: bool,
) -> String {
    let agent = AgentSpec::default();
    let (run, _job) = rt
        .submit(&TurnRequest {
            agent,
            session_id: Some("s".into()),
            input: "do it".into(),
            user_id: None,
        })
        .await
        .unwrap();
    let store = &rt.store();
    let mut lease = store
        .try_acquire_session("s", &run.id, 30_000)
        .await
        .unwrap()
        .unwrap();
    let user = Message::user_text("do it");
    let call = ContentBlock::ToolUse {
        id: "call_1".into(),
        name: tool.into(),
        input: input.clone(),
    };
    let assistant = Message {
        role: Role::Assistant,
        content: vec![call],
    };
    let response = ModelResponse {
        content: assistant.content.clone(),
        stop_reason: StopReason::ToolUse,
        usage: Usage::default(),
        model: run.model.clone(),
        route: None,
    };
    let entries = vec![
        entry(
            None,
            JournalPayload::ModelCall(ModelCallIntent {
                provider: run.provider.clone(),
                model: run.model.clone(),
                messages: 1,
                tools: 0,
                stream: false,
            }),
        ),
        entry(
            Some(0),
            JournalPayload::ModelResult(ModelOutcome::Answered {
                response,
                cost_usd: 0.0,
            }),
        ),
        entry(
            None,
            JournalPayload::ToolCall(ToolIntent {
                id: "call_1".into(),
                name: tool.into(),
                input,
                idempotent,
            }),
        ),
    ];
    let mut running = run.clone();
    running.status = cairn_core::RunStatus::Running;
    running.steps = 1;
    store
        .commit_step(
            &run.id,
            Some(&mut lease),
            StepCommit {
                entries,
                messages: vec![&user, &assistant],
                run: Some(&running),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.release_session(&lease).await.unwrap();
    run.id
}

async fn a_side_effect_is_not_repeated(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLlm::start();
    let rt = runtime(store, &fake, dir.path());
    let run_id = crashed_during(
        &rt,
        "write_file",
        serde_json::json!({"path": "a.txt", "content": "x"}),
        false,
    )
    .await;
    fake.push([Reply::text("I could not tell whether a.txt was written.")]);
    let done = drive_next(&rt).await;
    assert_eq!(done.id, run_id);
    assert_eq!(done.status, cairn_core::RunStatus::Completed, "{done:?}");
    assert!(
        !dir.path().join("default").join("a.txt").exists(),
        "the write was not repeated"
    );
    let asked = fake.requests().pop().unwrap().body.to_string();
    assert!(asked.contains("outcome unknown"), "{asked}");
    let journal = rt.store().journal(&run_id).await.unwrap();
    assert!(journal.iter().any(|e| matches!(&e.body,
        JournalPayload::ToolResult(r) if r.outcome_unknown && r.id == "call_1")));
}

async fn an_idempotent_call_runs_again(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("default")).unwrap();
    std::fs::write(
        dir.path().join("default").join("notes.txt"),
        "the code is 4417",
    )
    .unwrap();
    let fake = FakeLlm::start();
    let rt = runtime(store, &fake, dir.path());
    let run_id = crashed_during(
        &rt,
        "read_file",
        serde_json::json!({"path": "notes.txt"}),
        true,
    )
    .await;
    fake.push([Reply::text("The code is 4417.")]);
    let done = drive_next(&rt).await;
    assert_eq!(done.output.as_deref(), Some("The code is 4417."));
    let asked = fake.requests().pop().unwrap().body.to_string();
    assert!(asked.contains("the code is 4417"), "re-read: {asked}");
    let results = rt
        .store()
        .journal(&run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.body, JournalPayload::ToolResult(r) if !r.outcome_unknown))
        .count();
    assert_eq!(results, 1);
}

/// Stands in for the cluster's placed tools: every call is recorded with
/// its key, and a call whose key was seen before changes nothing.
struct KeyedWrites(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

struct KeyedWrite {
    spec: cairn_core::ToolSpec,
    keys: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl cairn_tools::ToolPlacement for KeyedWrites {
    fn place(&self, _agent: &AgentSpec, tools: &mut cairn_tools::ToolRegistry) {
        let spec = tools.get("write_file").unwrap().spec();
        tools.insert(std::sync::Arc::new(KeyedWrite {
            spec,
            keys: self.0.clone(),
        }));
    }

    async fn place_mcp(
        &self,
        server: &str,
        _config: &cairn_tools::mcp::McpServerConfig,
        _tools: &mut cairn_tools::ToolRegistry,
    ) -> Result<(), cairn_tools::McpUnplaced> {
        Err(cairn_tools::McpUnplaced::Listing(format!(
            "{server}: no MCP here"
        )))
    }
}

#[async_trait::async_trait]
impl cairn_tools::Tool for KeyedWrite {
    fn spec(&self) -> cairn_core::ToolSpec {
        self.spec.clone()
    }
    fn idempotent(&self) -> bool {
        false
    }
    fn keyed(&self) -> bool {
        true
    }
    async fn call(
        &self,
        ctx: &cairn_tools::ToolContext,
        _input: serde_json::Value,
    ) -> cairn_core::ToolOutput {
        let key = ctx.call_key.clone().unwrap_or_default();
        self.keys.lock().unwrap().push(key.clone());
        cairn_core::ToolOutput::ok(format!("job {key} done"))
    }
}

async fn a_keyed_call_resumes_under_its_key(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLlm::start();
    let keys = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rt = runtime(store, &fake, dir.path())
        .with_placement(std::sync::Arc::new(KeyedWrites(keys.clone())));
    let run_id = crashed_during(
        &rt,
        "write_file",
        serde_json::json!({"path": "a.txt", "content": "x"}),
        false,
    )
    .await;
    let intent_seq = rt
        .store()
        .journal(&run_id)
        .await
        .unwrap()
        .iter()
        .find(|e| matches!(e.body, JournalPayload::ToolCall(_)))
        .unwrap()
        .seq;
    fake.push([Reply::text("Written.")]);
    let agent = AgentSpec {
        placement: Some(cairn_core::Placement::default()),
        ..AgentSpec::default()
    };
    let done = drive_next_as(&rt, agent).await;
    assert_eq!(done.status, cairn_core::RunStatus::Completed, "{done:?}");
    let key = format!("{run_id}/{intent_seq}");
    assert_eq!(
        *keys.lock().unwrap(),
        vec![key.clone()],
        "resumed once, under the intent's key"
    );
    let asked = fake.requests().pop().unwrap().body.to_string();
    assert!(asked.contains(&format!("job {key} done")), "{asked}");
    assert!(!asked.contains("outcome unknown"), "{asked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_side_effect_is_not_repeated() {
    a_side_effect_is_not_repeated(TestStore::sqlite().open().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_side_effect_is_not_repeated() {
    let db = TestStore::postgres().await;
    a_side_effect_is_not_repeated(db.open().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_idempotent_call_runs_again() {
    an_idempotent_call_runs_again(TestStore::sqlite().open().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_idempotent_call_runs_again() {
    let db = TestStore::postgres().await;
    an_idempotent_call_runs_again(db.open().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_keyed_call_resumes_under_its_key() {
    a_keyed_call_resumes_under_its_key(TestStore::sqlite().open().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_keyed_call_resumes_under_its_key() {
    let db = TestStore::postgres().await;
    a_keyed_call_resumes_under_its_key(db.open().await).await;
}
