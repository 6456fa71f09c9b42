//! `[tools.sandbox]` and `[tools.http_fetch]`: how far commands and fetches
//! reach.

use serde::{Deserialize, Serialize};

/// `[tools.sandbox]`: limits for every sandboxed command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Memory per command (all its processes, where cgroups allow) and per
    /// process, MiB (0: unlimited).
    pub memory_mb: u64,
    /// Processes and threads a command may have at once.
    pub max_procs: u64,
    /// Largest file a command may write, MiB.
    pub file_size_mb: u64,
    /// All a command may write to disk, MiB (0: unlimited).
    pub disk_mb: u64,
    /// CPU seconds per process (0: the call's timeout).
    pub cpu_s: u64,
    /// Output after which a command is killed, MiB.
    pub output_mb: u64,
    /// bubblewrap binary; empty: `bwrap` on PATH.
    pub bwrap: String,
    /// Networks every `workspace` command may reach although not public
    /// (agents add their own with `network_allow`).
    pub network_allow: Vec<String>,
    /// Who commands run as when the server runs as root; empty: the
    /// `cairn-sandbox` user when it exists, else `nobody`.
    pub user: String,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let d = cairn_tools::sandbox::Limits::default();
        SandboxConfig {
            memory_mb: d.memory_mb,
            max_procs: d.max_procs,
            file_size_mb: d.file_size_mb,
            disk_mb: d.disk_mb,
            cpu_s: d.cpu_s,
            output_mb: d.output_mb,
            bwrap: String::new(),
            network_allow: Vec::new(),
            user: String::new(),
        }
    }
}

impl SandboxConfig {
    /// The limits these settings give.
    pub fn limits(&self) -> cairn_tools::sandbox::Limits {
        cairn_tools::sandbox::Limits {
            memory_mb: self.memory_mb,
            max_procs: self.max_procs.max(8),
            file_size_mb: self.file_size_mb.max(1),
            disk_mb: self.disk_mb,
            cpu_s: self.cpu_s,
            output_mb: self.output_mb,
        }
    }
}

/// `[tools.http_fetch]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpFetchConfig {
    /// Addresses or networks (`10.0.0.5`, `192.168.1.0/24`, `::1`) that
    /// `http_fetch` may reach although they are loopback, private,
    /// link-local or metadata addresses.
    pub allow: Vec<String>,
}
