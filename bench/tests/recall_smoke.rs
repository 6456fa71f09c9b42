//! `cairn-bench recall --smoke`: the recall benchmark on a 30-question
//! slice of the labelled set, with the real all-MiniLM-L6-v2 model, as CI
//! runs it. Quality, not speed: the figures are deterministic for a model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_testkit::{TestDatabase, minilm_model_dir};

fn smoke(extra: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .args(["recall", "--smoke", "--json"])
        .args(extra)
        .env("BENCH_MODEL_DIR", minilm_model_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn the_recall_benchmark_runs_on_a_slice_and_hybrid_holds_its_ground() {
    let report = smoke(&[]);
    let slice = &report["slice"];
    let metric = |mode: &str, m: &str| slice[mode][m].as_f64().unwrap();
    let answerable = slice["hybrid"]["answerable"].as_u64().unwrap();
    let unanswerable = slice["hybrid"]["unanswerable"].as_u64().unwrap();
    assert_eq!(answerable + unanswerable, 30, "{report}");
    assert!(unanswerable >= 1, "{report}");
    // Meaning carries most questions; words alone find fewer than half.
    assert!(metric("words only", "recall_at_3") < 0.6, "{report}");
    assert!(metric("hybrid", "recall_at_3") >= 0.75, "{report}");
    assert!(
        metric("hybrid", "mrr") >= metric("words only", "mrr"),
        "{report}"
    );
    assert!(
        metric("hybrid", "mrr") >= metric("meaning only", "mrr") - 0.05,
        "{report}"
    );

    // Bad usage: a clear error and a non-zero exit.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .args(["recall", "--fast"])
        .env("BENCH_MODEL_DIR", minilm_model_dir())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown option"));
}

/// The same slice on PostgreSQL: its full-text side (tsvector with its own
/// BM25) and the shared vector index must rank and recall as SQLite does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_ranks_and_recalls_the_slice_as_sqlite_does() {
    let db = TestDatabase::create().await;
    let url = db.url().to_string();
    let (sqlite, pg) =
        tokio::task::spawn_blocking(move || (smoke(&[]), smoke(&["--postgres", &url])))
            .await
            .unwrap();
    let rankings = |r: &serde_json::Value| r["hybrid_rankings"].as_array().unwrap().clone();
    assert_eq!(rankings(&sqlite).len(), 30);
    for (a, b) in rankings(&sqlite).iter().zip(rankings(&pg).iter()) {
        assert_eq!(a, b, "SQLite and PostgreSQL disagree");
    }
    assert_eq!(sqlite["slice"], pg["slice"]);

    // A database that already holds memories is refused, not mixed in.
    let url = db.url().to_string();
    let again = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
            .args(["recall", "--smoke", "--postgres", &url])
            .env("BENCH_MODEL_DIR", minilm_model_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds memories"));
}
