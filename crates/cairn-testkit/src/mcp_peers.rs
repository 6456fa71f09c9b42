//! The reference MCP servers scripts/test.sh installs from npm
//! (`scripts/mcp-peers`, `npm ci`). Missing → the test fails and says how
//! to fix it; it never skips.

use std::path::PathBuf;

/// The entry script of `@modelcontextprotocol/<package>` (run with node).
pub fn mcp_reference_server(package: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/mcp-peers/node_modules/@modelcontextprotocol")
        .join(package)
        .join("dist/index.js");
    assert!(
        path.exists(),
        "{} not found: run scripts/test.sh, which installs the reference MCP servers (npm ci in scripts/mcp-peers)",
        path.display()
    );
    // Resolved: a sandbox that hides the clone's parents cannot walk `..`.
    path.canonicalize().unwrap_or(path)
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
