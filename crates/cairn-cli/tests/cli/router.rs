//! Hybrid routing end to end: a cloud provider (the fake, Anthropic wire)
//! and a local one (the fake, OpenAI wire) side by side. Canary secrets and
//! personal data planted in prompts, files and tool results never appear
//! in anything the cloud fake receives, under either policy; the local
//! fake gets them where allowed; redacted values come back in the answer;
//! every decision is journaled.

use cairn_testkit::{CairnHome, FakeLlm, Reply};
use serde_json::{Value, json};

use crate::*;

/// What must never reach the cloud.
pub const CANARIES: &[&str] = &[
    "ada.canary@example.com",
    "4111 1111 1111 1111",
    "sk-ant-api03-canaryCANARYcanary0123456789",
    "GB82 WEST 1234 5698 7654 32",
    "EMP-424242",
    "-----BEGIN RSA PRIVATE KEY-----",
];

/// A cloud provider allowed public and internal data, a local one allowed
/// everything, and `extra` router settings.
fn hybrid(h: &CairnHome, cloud: &FakeLlm, local: &FakeLlm, extra: &str) {
    h.write_config(&hybrid_config(cloud, local, extra));
}

/// The text of `hybrid`'s configuration.
pub fn hybrid_config(cloud: &FakeLlm, local: &FakeLlm, extra: &str) -> String {
    format!(
        r#"
[providers.claude]
kind = "anthropic"
base_url = "{}"
key_env = "TEST_CLOUD_KEY"
model = "claude-sonnet-4-5"
data = ["public", "internal"]

[providers.local]
kind = "openai"
base_url = "{}"
model = "llama3.1:8b"
data = ["public", "internal", "restricted"]
price = {{ input = 0.0, output = 0.0 }}

[router]
order = ["claude", "local"]
patterns = {{ employee_id = "EMP-[0-9]{{6}}" }}
{extra}
"#,
        cloud.anthropic_url(),
        local.openai_url()
    )
}

pub fn cmd(h: &CairnHome) -> std::process::Command {
    let mut c = h.cmd();
    c.env("TEST_CLOUD_KEY", "sk-ant-test");
    c
}

/// Fails if any canary is in anything the cloud fake was sent.
pub fn cloud_saw_no_canary(cloud: &FakeLlm) {
    for r in cloud.requests() {
        let body = r.body.to_string();
        for c in CANARIES {
            let c_json = serde_json::to_string(c).unwrap();
            let bare = c_json.trim_matches('"');
            assert!(!body.contains(bare), "the cloud was sent {c:?}: {body}");
        }
    }
}

/// The route decisions of a run's model calls, from its journal.
pub fn routes(h: &CairnHome, run_id: &str) -> Vec<Value> {
    let detail = json(h, &["runs", "show", run_id]);
    detail["journal"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["payload"]["response"]["route"].as_object().cloned())
        .map(Value::Object)
        .collect()
}

/// `cmd` with memory (and the classifier) on the real local model.
fn with_model(mut c: std::process::Command) -> std::process::Command {
    c.env("CAIRN_MEMORY__MODEL_DIR", cairn_testkit::minilm_model_dir());
    c
}

fn run_json(h: &CairnHome, prompt: &str) -> Value {
    let out = ok(cmd(h), &["run", "--no-stream", "--json", prompt]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[test]
fn restricted_data_never_reaches_the_cloud_and_each_call_says_where_it_went() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(&h, &cloud, &local, "");
    std::fs::create_dir_all(h.workspace()).unwrap();
    std::fs::write(
        h.workspace().join("contacts.txt"),
        format!(
            "HR: {}\ncard {}\n{}\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n",
            CANARIES[0], CANARIES[1], CANARIES[5]
        ),
    )
    .unwrap();

    // Public: the preferred (cloud) provider.
    cloud.push([Reply::text("Paris.")]);
    let done = run_json(&h, "What is the capital of France?");
    assert_eq!(done["output"], "Paris.", "{done}");
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "claude", "{r:?}");
    assert_eq!(r[0]["class"], "public", "{r:?}");

    // Personal data and secrets in the prompt: the local model only.
    local.push([Reply::text("Noted locally.")]);
    let prompt = format!(
        "Mail {} about card {} and key {}; IBAN {}; badge {}",
        CANARIES[0], CANARIES[1], CANARIES[2], CANARIES[3], CANARIES[4]
    );
    let done = run_json(&h, &prompt);
    assert_eq!(done["output"], "Noted locally.", "{done}");
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "local", "{r:?}");
    assert_eq!(r[0]["class"], "restricted");
    let labels: Vec<&str> = r[0]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    for l in ["email", "card", "api_key", "iban", "employee_id"] {
        assert!(labels.contains(&l), "{labels:?}");
    }
    assert!(local.requests()[0].body.to_string().contains(CANARIES[0]));
    let shown = stdout(&ok(
        cmd(&h),
        &["runs", "show", done["id"].as_str().unwrap()],
    ));
    assert!(
        shown.contains("routed to local (llama3.1:8b): restricted data [email, card"),
        "{shown}"
    );

    // A public question whose tool result turns out restricted: the call
    // that carries the result goes local.
    cloud.push([Reply::tool("read_file", json!({"path": "contacts.txt"}))]);
    local.push([Reply::text("HR is reachable by mail.")]);
    let done = run_json(&h, "Who is our HR contact?");
    assert_eq!(done["output"], "HR is reachable by mail.", "{done}");
    let r = routes(&h, done["id"].as_str().unwrap());
    let providers: Vec<&str> = r.iter().map(|x| x["provider"].as_str().unwrap()).collect();
    assert_eq!(providers, ["claude", "local"], "{r:?}");

    cloud_saw_no_canary(&cloud);
    assert_eq!(cloud.requests().len(), 2);
}

#[test]
fn redaction_sends_placeholders_and_restores_them_in_the_answer() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(&h, &cloud, &local, "restricted = \"redact\"");
    cloud.push([Reply::text(
        "Drafted a note to <<EMAIL_1>> about <<CARD_1>>.",
    )]);
    let prompt = format!("Draft a note to {} about card {}", CANARIES[0], CANARIES[1]);
    let done = run_json(&h, &prompt);
    assert_eq!(
        done["output"],
        format!("Drafted a note to {} about {}.", CANARIES[0], CANARIES[1]),
        "{done}"
    );
    let sent = cloud.requests()[0].body.to_string();
    assert!(
        sent.contains("<<EMAIL_1>>") && sent.contains("<<CARD_1>>"),
        "{sent}"
    );
    cloud_saw_no_canary(&cloud);
    assert!(
        local.requests().is_empty(),
        "the preferred provider answered"
    );
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "claude");
    assert_eq!(r[0]["redactions"], 2, "{r:?}");
}

#[test]
fn a_summary_the_local_model_cannot_write_leaves_the_result_withheld() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(
        &h,
        &cloud,
        &local,
        "restricted = \"summarise\"\ntools = { read_file = \"restricted\" }",
    );
    std::fs::create_dir_all(h.workspace()).unwrap();
    std::fs::write(
        h.workspace().join("ledger.txt"),
        format!("Badge {} owes 1,200 EUR\n", CANARIES[4]),
    )
    .unwrap();
    cloud.push([
        Reply::tool("read_file", json!({"path": "ledger.txt"})),
        Reply::text("I may not see the ledger."),
    ]);
    local.respond_with(|_| Some(Reply::error(503, "overloaded")));
    let done = run_json(&h, "Does the ledger show any debt?");
    assert_eq!(done["output"], "I may not see the ledger.", "{done}");
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[1]["provider"], "claude", "{r:?}");
    assert_eq!(
        (r[1]["withheld"].as_u64(), r[1]["summarised"].as_u64()),
        (Some(1), Some(0)),
        "{r:?}"
    );
    let sent = cloud.requests()[1].body.to_string();
    assert!(sent.contains("[withheld by cairn"), "{sent}");
    assert!(!sent.contains("1,200"), "{sent}");
    assert!(!local.requests().is_empty(), "the local model was asked");
    cloud_saw_no_canary(&cloud);
}

#[test]
fn a_failing_provider_falls_back_only_where_the_data_may_go() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(&h, &cloud, &local, "");
    // Public: the cloud is rate limited, the local model answers.
    cloud.push([Reply::Error {
        status: 429,
        message: "slow down".into(),
        headers: vec![("retry-after".into(), "120".into())],
    }]);
    local.push([Reply::text("answered locally")]);
    let done = run_json(&h, "Say hello");
    assert_eq!(done["output"], "answered locally", "{done}");
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "local");
    assert!(
        r[0]["fell_back_from"][0]
            .as_str()
            .unwrap()
            .starts_with("claude"),
        "{r:?}"
    );

    // Restricted: the local model fails; the cloud is never tried.
    let before = cloud.requests().len();
    for _ in 0..5 {
        local.push([Reply::Error {
            status: 503,
            message: "overloaded".into(),
            headers: vec![],
        }]);
    }
    let prompt = format!("Mail {}", CANARIES[0]);
    let out = run(cmd(&h), &["run", "--no-stream", "--json", &prompt]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(cloud.requests().len(), before, "no fallback to the cloud");
    cloud_saw_no_canary(&cloud);
}

#[test]
fn route_explain_says_where_a_prompt_would_go() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(&h, &cloud, &local, "");
    let out = ok(
        cmd(&h),
        &["route", "explain", "--json", "Mail ada.canary@example.com"],
    );
    let x: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(x["class"], "restricted");
    assert_eq!(x["labels"], json!(["email"]));
    assert_eq!(x["chosen"], "local");
    assert_eq!(x["providers"][0]["verdict"], "not allowed");
    let out = ok(cmd(&h), &["route", "explain", "What is 2+2?"]);
    assert!(stdout(&out).contains("→ claude"), "{}", stdout(&out));
    assert!(cloud.requests().is_empty() && local.requests().is_empty());
}

#[test]
fn policies_that_cannot_work_are_refused_at_load_with_their_line() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    let only_public = Some((
        "data = [\"public\", \"internal\", \"restricted\"]",
        "data = [\"public\"]",
    ));
    // `route explain` with `extra` in [router] and `edit` made to the file
    // fails, saying `says`, at the line that starts with `at` (any line).
    let refused = |extra: &str, edit: Option<(&str, &str)>, says: &str, at: &str| {
        hybrid(&h, &cloud, &local, extra);
        let text = std::fs::read_to_string(h.path().join("cairn.toml")).unwrap();
        if let Some((from, to)) = edit {
            h.write_config(&text.replace(from, to));
        }
        let out = run(cmd(&h), &["route", "explain", "hi"]);
        assert!(!out.status.success());
        let err = stderr(&out);
        let place = match text
            .lines()
            .position(|l| !at.is_empty() && l.starts_with(at))
        {
            Some(i) => format!("cairn.toml:{}:", i + 1),
            None => "cairn.toml:".to_string(),
        };
        assert!(err.contains(says) && err.contains(&place), "{err}");
    };
    // No provider may receive restricted data, and it is not redacted.
    refused(
        "",
        only_public,
        "no provider may receive restricted data",
        "",
    );
    // Summaries with nobody allowed to read what they summarise.
    refused(
        "restricted = \"summarise\"",
        only_public,
        "restricted = \"summarise\" needs a provider that may receive restricted data",
        "",
    );
    // Or a summariser that may not read them.
    refused(
        "restricted = \"summarise\"\nsummarise_with = \"claude\"",
        None,
        "summarise_with = \"claude\" may not receive restricted data",
        "summarise_with",
    );
    // An unknown provider in the order.
    refused(
        "",
        Some((
            "order = [\"claude\", \"local\"]",
            "order = [\"claude\", \"gpt\"]",
        )),
        "\"gpt\", which is not a provider",
        "order =",
    );
    // An invalid regular expression: refused by the parser, with its line.
    refused(
        "",
        Some(("EMP-[0-9]{6}", "EMP-[0-9")),
        "not a valid regular expression",
        "patterns =",
    );
}

#[test]
fn an_agent_model_naming_a_provider_goes_there_first() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(
        &h,
        &cloud,
        &local,
        "\n[agents.default]\nmodel = \"local/llama3.2:1b\"\n",
    );
    local.push([Reply::text("cheap and local")]);
    let done = run_json(&h, "Summarise: the meeting moved to Tuesday.");
    assert_eq!(done["output"], "cheap and local", "{done}");
    assert!(cloud.requests().is_empty());
    assert_eq!(local.requests()[0].body["model"], "llama3.2:1b");
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "local", "{r:?}");
    assert_eq!(r[0]["cost_usd"], 0.0, "{r:?}");
}

#[test]
fn a_remembered_secret_keeps_the_call_that_recalls_it_local() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(&h, &cloud, &local, "");
    let fact = format!("The HR contact's email is {}.", CANARIES[0]);
    ok(with_model(cmd(&h)), &["memory", "save", &fact]);
    local.push([Reply::text("Ask HR by mail.")]);
    let out = ok(
        with_model(cmd(&h)),
        &[
            "run",
            "--no-stream",
            "--json",
            "How do I reach the HR contact by email?",
        ],
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["output"], "Ask HR by mail.", "{done}");
    assert!(
        local.requests()[0].body.to_string().contains(CANARIES[0]),
        "the memory was recalled into the prompt"
    );
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "local", "{r:?}");
    assert!(cloud.requests().is_empty());
}

/// The labelled prompt set shipped in the repository.
fn shipped_prompts() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cairn-llm/data/route_prompts.jsonl")
}

#[test]
fn the_classifier_agrees_with_the_shipped_labels() {
    let h = home();
    let path = shipped_prompts();
    let evaluate = || -> Value {
        let examples = path.to_str().unwrap();
        let args = ["route", "evaluate", "--json", "--examples", examples];
        serde_json::from_slice(&ok(with_model(h.cmd()), &args).stdout).unwrap()
    };
    let r = evaluate();
    eprintln!("classifier on the shipped set (first layer, the default): {r}");
    assert_eq!(r["examples"], 119);
    assert!(r["agreement"].as_f64().unwrap() >= 0.95, "{r}");
    let simple = r["judged_simple"].as_f64().unwrap();
    assert!((0.35..=0.65).contains(&simple), "{r}");

    // The whole model, shared with memory: another embedding, less apt.
    h.write_config("[router.classifier]\nlayers = 0\n");
    let whole = evaluate();
    eprintln!("classifier on the whole model: {whole}");
    let (cut, all) = (
        r["agreement"].as_f64().unwrap(),
        whole["agreement"].as_f64().unwrap(),
    );
    assert!((0.85..cut).contains(&all), "{r} {whole}");
}

#[test]
fn simple_work_goes_local_and_demanding_work_to_the_frontier_model() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    std::fs::copy(shipped_prompts(), h.path().join("route_prompts.jsonl")).unwrap();
    hybrid(
        &h,
        &cloud,
        &local,
        "\n[router.classifier]\nsimple = \"local\"\ncomplex = \"claude\"\nexamples_file = \"route_prompts.jsonl\"\n",
    );
    local.push([Reply::text("Merci.")]);
    let out = ok(
        with_model(cmd(&h)),
        &[
            "run",
            "--no-stream",
            "--json",
            "Translate 'thank you' into French.",
        ],
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "local", "{r:?}");
    assert!(
        r[0]["reason"]
            .as_str()
            .unwrap()
            .contains("classified simple"),
        "{r:?}"
    );

    cloud.push([Reply::text("Here is the plan.")]);
    let out = ok(
        with_model(cmd(&h)),
        &[
            "run",
            "--no-stream",
            "--json",
            "Design a plan to move our database cluster to another region with zero downtime, with risks, rollback points and a schedule.",
        ],
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "claude", "{r:?}");
    assert!(
        r[0]["reason"]
            .as_str()
            .unwrap()
            .contains("classified complex"),
        "{r:?}"
    );

    // Residency still comes first: simple work with a secret stays local,
    // demanding work with one too.
    local.push([Reply::text("Done locally.")]);
    let prompt = format!(
        "Design a plan to move our database cluster to another region; the admin is {}",
        CANARIES[0]
    );
    let out = ok(
        with_model(cmd(&h)),
        &["run", "--no-stream", "--json", &prompt],
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "local", "{r:?}");
    cloud_saw_no_canary(&cloud);

    // A remote embedder would see the prompts: refused.
    let mut c = cmd(&h);
    c.env("CAIRN_MEMORY__EMBEDDER", "openai");
    let out = run(c, &["route", "explain", "hi"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a remote embedder would see the prompts"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rules_send_matching_calls_where_they_say() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(
        &h,
        &cloud,
        &local,
        "\n[[router.rules]]\nagent = \"default\"\nmin_tokens = 100\nprovider = \"local\"\n",
    );
    cloud.push([Reply::text("short one")]);
    let done = run_json(&h, "Hello there.");
    assert_eq!(
        routes(&h, done["id"].as_str().unwrap())[0]["provider"],
        "claude"
    );
    local.push([Reply::text("long one")]);
    let long = "Please read this carefully. ".repeat(20);
    let done = run_json(&h, &long);
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "local", "{r:?}");
    assert!(
        r[0]["reason"].as_str().unwrap().starts_with("rule 1"),
        "{r:?}"
    );
}

#[test]
fn a_spent_budget_downgrades_mid_run_or_stops_with_a_clear_message() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(
        &h,
        &cloud,
        &local,
        "\n[router.budgets.default]\ndaily_usd = 0.000001\nover = \"downgrade\"\ndowngrade_to = \"local\"\n",
    );
    std::fs::create_dir_all(h.workspace()).unwrap();
    std::fs::write(h.workspace().join("notes.txt"), "nothing secret").unwrap();
    // The first call is within budget and costs something; the next one,
    // in the same run, is past it.
    cloud.push([Reply::tool("read_file", json!({"path": "notes.txt"}))]);
    local.push([Reply::text("finished cheaply")]);
    let done = run_json(&h, "Read notes.txt and tell me what it says.");
    assert_eq!(done["output"], "finished cheaply", "{done}");
    let r = routes(&h, done["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "claude", "{r:?}");
    assert!(r[0]["cost_usd"].as_f64().unwrap() > 0.0, "{r:?}");
    assert_eq!(r[1]["provider"], "local", "{r:?}");
    assert!(
        r[1]["reason"].as_str().unwrap().contains("daily budget"),
        "{r:?}"
    );

    // Stop: refused, with what was spent and when it resets.
    hybrid(
        &h,
        &cloud,
        &local,
        "\n[router.budgets.\"*\"]\ndaily_usd = 0.000001\nover = \"stop\"\n",
    );
    let before = (cloud.requests().len(), local.requests().len());
    let out = run(cmd(&h), &["run", "--no-stream", "Hello again"]);
    assert!(!out.status.success(), "{}", describe(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("daily budget") && said.contains("midnight UTC"),
        "{said}"
    );
    assert_eq!((cloud.requests().len(), local.requests().len()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_where_calls_went_and_what_was_refused() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    hybrid(&h, &cloud, &local, "restricted = \"redact\"");
    let server = cairn_testkit::ServerProcess::start(cmd(&h));
    let api = crate::api::Api::new(&server);
    api.session("s1").await;
    cloud.push([Reply::text("Noted for <<EMAIL_1>>.")]);
    let done = api
        .turn("s1", &format!("Remember {} for the report", CANARIES[0]))
        .await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    let r = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        r.headers()
    );
    let text = r.text().await.unwrap();
    for line in [
        "cairn_runs{status=\"completed\"} 1",
        "cairn_model_calls_total{provider=\"claude\",class=\"restricted\"} 1",
        "cairn_model_redactions_total{provider=\"claude\",class=\"restricted\"} 1",
        "cairn_model_refusals_total{reason=\"residency\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    cloud_saw_no_canary(&cloud);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_budget_follows_them_and_not_the_owner() {
    let (cloud, local) = (FakeLlm::start(), FakeLlm::start());
    let h = home();
    let config = format!(
        "{}\n[channels.webhook.ops]\nsecret = \"whsec\"\nreply_url = \"http://127.0.0.1:9/replies\"\n[channels.users]\nbob = [\"webhook.ops:oncall\"]\n",
        hybrid_config(
            &cloud,
            &local,
            "[router.user_budgets.\"*\"]\ndaily_usd = 0.000001\nover = \"downgrade\"\ndowngrade_to = \"local\"\n",
        )
    );
    h.write_config(&config);
    let server = cairn_testkit::ServerProcess::start(cmd(&h));
    let api = crate::api::Api::new(&server);
    let say = |id: &str, text: &str| {
        let body = json!({"id": id, "chat": "pager", "user": "oncall", "text": text});
        let api = &api;
        async move { api.signed_webhook("ops", "whsec", &body).await }
    };
    let bobs_runs = |n: usize| {
        let api = &api;
        async move {
            let start = std::time::Instant::now();
            loop {
                let (_, runs) = api.get("/api/v1/runs").await;
                let done: Vec<Value> = runs
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["user_id"] == "bob" && r["status"] == "completed")
                    .cloned()
                    .collect();
                if done.len() >= n {
                    return done;
                }
                assert!(start.elapsed().as_secs() < 30, "{runs}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    cloud.push([Reply::text("first, from the cloud")]);
    assert!(say("m-1", "what is up?").await.status().is_success());
    bobs_runs(1).await;
    local.push([Reply::text("second, past bob's budget")]);
    assert!(say("m-2", "and now?").await.status().is_success());
    let runs = bobs_runs(2).await;
    let last = runs
        .iter()
        .find(|r| r["output"] == "second, past bob's budget")
        .unwrap_or_else(|| panic!("{runs:?}"));
    let r = routes(&h, last["id"].as_str().unwrap());
    assert_eq!(r[0]["provider"], "local", "{r:?}");
    assert!(
        r[0]["reason"]
            .as_str()
            .unwrap()
            .contains("\"bob\" has spent"),
        "{r:?}"
    );

    // The local owner has no person budget: still the preferred provider.
    cloud.push([Reply::text("owner, from the cloud")]);
    let done = run_json(&h, "Hello from the owner");
    assert_eq!(
        routes(&h, done["id"].as_str().unwrap())[0]["provider"],
        "claude"
    );
}
