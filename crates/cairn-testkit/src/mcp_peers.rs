//! The reference MCP servers scripts/test.sh installs from npm
//! (`scripts/mcp-peers`, `npm ci`). Missing → the test fails and says how
//! to fix it; it never skips.

use std::path::PathBuf;

/// `rel` in the checkout being tested. Found from the test's own
/// `CARGO_MANIFEST_DIR` at run time, not this crate's at build time: clones
/// sharing a target directory share this crate's build, and with it a
/// path baked in by whichever clone built it (perhaps deleted since).
pub fn repo_path(rel: &str) -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = start
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(&start)
        .to_path_buf();
    let path = root.join(rel);
    // Resolved: a sandbox that hides the clone's parents cannot walk `..`.
    path.canonicalize().unwrap_or(path)
}

/// The entry script of `@modelcontextprotocol/<package>` (run with node).
pub fn mcp_reference_server(package: &str) -> PathBuf {
    let path = repo_path("scripts/mcp-peers/node_modules/@modelcontextprotocol")
        .join(package)
        .join("dist/index.js");
    assert!(
        path.exists(),
        "{} not found: run scripts/test.sh, which installs the reference MCP servers (npm ci in scripts/mcp-peers)",
        path.display()
    );
    path
}

/// Node.js, which runs them.
pub fn node() -> String {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "node not found on PATH: run scripts/test.sh, which installs Node.js for the MCP tests"
    );
    "node".into()
}
