//! `cairn-bench recall --smoke`: the recall benchmark on a 30-question
//! slice of the labelled set, with the real all-MiniLM-L6-v2 model, as CI
//! runs it. Quality, not speed: the figures are deterministic for a model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_testkit::minilm_model_dir;

#[test]
fn the_recall_benchmark_runs_on_a_slice_and_hybrid_holds_its_ground() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .args(["recall", "--smoke", "--json"])
        .env("BENCH_MODEL_DIR", minilm_model_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
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
