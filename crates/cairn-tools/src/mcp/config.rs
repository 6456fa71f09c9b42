//! `[mcp.servers.<name>]`: how to reach one MCP server.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One MCP server an agent may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpServerConfig {
    /// A program to start, speaking MCP on its stdin and stdout (stdio).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables it gets on top of the sandbox's allowlist.
    pub env: BTreeMap<String, String>,
    /// Host paths a sandboxed stdio server may read besides what the
    /// sandbox shows (its installation or data under a home or /tmp,
    /// which the sandbox hides); bound read-only.
    pub read_paths: Vec<String>,
    /// A streamable-HTTP endpoint instead of a command.
    pub url: String,
    /// Headers sent with every HTTP request (`Authorization = "Bearer …"`).
    pub headers: BTreeMap<String, String>,
    /// A call without an answer for this long fails (seconds).
    pub timeout_s: u64,
    /// Largest single message accepted from the server (bytes); a larger
    /// one ends the connection, which is restarted.
    pub max_message_bytes: usize,
    /// Results of its tools are restricted data (the router keeps them
    /// away from providers not allowed restricted content).
    pub restricted: bool,
    /// Labels of the cluster workers that run it (`{ region = "eu" }`):
    /// on a coordinator its tools are placed there (each such worker
    /// declares the server in its own config); empty: it runs here.
    pub node: BTreeMap<String, String>,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        McpServerConfig {
            command: String::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            read_paths: Vec::new(),
            url: String::new(),
            headers: BTreeMap::new(),
            timeout_s: 60,
            max_message_bytes: 32 << 20,
            restricted: false,
            node: BTreeMap::new(),
        }
    }
}

/// How a server is reached, once its config is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A child process.
    Stdio {
        /// Program.
        command: String,
        /// Arguments.
        args: Vec<String>,
    },
    /// Streamable HTTP.
    Http {
        /// The endpoint.
        url: String,
    },
    /// On cluster workers with the entry's `node` labels, which declare
    /// how to reach it in their own config.
    Worker,
}

/// Characters a server name may have: it prefixes tool names, which
/// providers restrict to `[A-Za-z0-9_-]`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.contains("__")
}

impl McpServerConfig {
    /// Whether its tools run on cluster workers.
    pub fn pinned(&self) -> bool {
        !self.node.is_empty()
    }

    /// Checks the entry named `name`; the message names the key at fault.
    pub fn endpoint(&self, name: &str) -> Result<Endpoint, String> {
        if !valid_name(name) {
            return Err(format!(
                "mcp.servers.{name}: a server name is 1-32 letters, digits, '-' or '_' without \"__\" (it prefixes its tools' names as <server>__<tool>)"
            ));
        }
        if self.timeout_s == 0 {
            return Err(format!("mcp.servers.{name}.timeout_s must be at least 1"));
        }
        if self.max_message_bytes < 1024 {
            return Err(format!(
                "mcp.servers.{name}.max_message_bytes must be at least 1024"
            ));
        }
        match (self.command.trim().is_empty(), self.url.trim().is_empty()) {
            (false, true) => {
                if let Some(p) = self.read_paths.iter().find(|p| !p.starts_with('/')) {
                    return Err(format!(
                        "mcp.servers.{name}.read_paths: {p:?} is not an absolute path"
                    ));
                }
                if !self.headers.is_empty() {
                    return Err(format!(
                        "mcp.servers.{name}.headers: headers apply to an HTTP server (url), not to a command"
                    ));
                }
                Ok(Endpoint::Stdio {
                    command: self.command.clone(),
                    args: self.args.clone(),
                })
            }
            (true, false) => {
                let url = self.url.trim();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "mcp.servers.{name}.url: {url:?} is not an http:// or https:// URL"
                    ));
                }
                if !self.args.is_empty() || !self.env.is_empty() || !self.read_paths.is_empty() {
                    return Err(format!(
                        "mcp.servers.{name}: args, env and read_paths apply to a command, not to an HTTP server (url)"
                    ));
                }
                for (k, v) in &self.headers {
                    let bad_name = k.is_empty()
                        || !k
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                    if bad_name || v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                        return Err(format!(
                            "mcp.servers.{name}.headers.{k}: not a valid HTTP header"
                        ));
                    }
                }
                Ok(Endpoint::Http {
                    url: url.to_string(),
                })
            }
            (true, true) if !self.node.is_empty() => Ok(Endpoint::Worker),
            (true, true) => Err(format!(
                "mcp.servers.{name}: set either command (a stdio server) or url (a streamable-HTTP server)"
            )),
            (false, false) => Err(format!("mcp.servers.{name}: set command or url, not both")),
        }
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_needs_exactly_one_endpoint_and_a_tool_safe_name() {
        let mut c = McpServerConfig::default();
        assert!(c.endpoint("fs").unwrap_err().contains("either command"));
        c.command = "node".into();
        assert!(matches!(c.endpoint("fs"), Ok(Endpoint::Stdio { .. })));
        c.read_paths = vec!["relative/dir".into()];
        assert!(c.endpoint("fs").unwrap_err().contains("read_paths"));
        c.read_paths.clear();
        assert!(c.endpoint("a__b").is_err());
        assert!(c.endpoint("a b").is_err());
        c.url = "http://x/mcp".into();
        assert!(c.endpoint("fs").unwrap_err().contains("not both"));
        c.command.clear();
        assert!(matches!(c.endpoint("fs"), Ok(Endpoint::Http { .. })));
        c.headers.insert("X-Evil".into(), "a\r\nb".into());
        assert!(c.endpoint("fs").unwrap_err().contains("headers.X-Evil"));
        c.headers.clear();
        c.url = "file:///etc/passwd".into();
        assert!(c.endpoint("fs").is_err());
    }
}
