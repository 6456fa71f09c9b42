//! The runtime below the CLI: a runtime, the fake LLM over real HTTP and a
//! temporary store of each backend. A run left by a crash between a tool
//! call's intent and its result resumes from the journal: a side-effecting
//! call is not run again (the model is told its outcome is unknown), an
//! idempotent one is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cairn_core::{
    AgentSpec, ContentBlock, JournalPayload, Message, ModelCallIntent, ModelOutcome, ModelResponse,
    Role, StopReason, ToolIntent, Usage,
};
use cairn_llm::{ProviderChoice, ProviderSettings, select_provider};
use cairn_runtime::{Runtime, TurnRequest};
use cairn_store::{NewEntry, PgSettings, PgStore, StepCommit, Store, kinds};
use cairn_testkit::{FakeLlm, Reply, TestDatabase};
use tokio_util::sync::CancellationToken;

fn runtime(store: Store, fake: &FakeLlm, ws: &std::path::Path) -> Runtime {
    let url = fake.anthropic_url();
    let settings = ProviderSettings {
        choice: ProviderChoice::Anthropic,
        model: String::new(),
        timeout: Duration::from_secs(30),
    };
    let provider = select_provider(&settings, &|k| match k {
        "ANTHROPIC_API_KEY" => Some("sk-ant-test".into()),
        "ANTHROPIC_BASE_URL" => Some(url.clone()),
        _ => None,
    })
    .unwrap();
    Runtime::new(store, provider, ws.to_path_buf())
}

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
        })
        .await
        .unwrap();
    let store = &rt.store;
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

async fn drive_next(rt: &Runtime) -> cairn_core::RunRecord {
    let job = rt
        .store
        .claim_job(&[kinds::ADVANCE_RUN], 30_000)
        .await
        .unwrap()
        .unwrap();
    rt.drive(job, AgentSpec::default(), &|_| {}, CancellationToken::new())
        .await
        .unwrap()
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
    let journal = rt.store.journal(&run_id).await.unwrap();
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
        .store
        .journal(&run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.body, JournalPayload::ToolResult(r) if !r.outcome_unknown))
        .count();
    assert_eq!(results, 1);
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    Store::open_sqlite(&dir.path().join("cairn.db"))
        .await
        .unwrap()
}

async fn pg_store(db: &TestDatabase) -> Store {
    Store::new(
        PgStore::connect(db.url(), &PgSettings::default())
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_side_effect_is_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    a_side_effect_is_not_repeated(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_side_effect_is_not_repeated() {
    let db = TestDatabase::create().await;
    a_side_effect_is_not_repeated(pg_store(&db).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_idempotent_call_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    an_idempotent_call_runs_again(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_idempotent_call_runs_again() {
    let db = TestDatabase::create().await;
    an_idempotent_call_runs_again(pg_store(&db).await).await;
}
