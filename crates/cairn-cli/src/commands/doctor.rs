//! `cairn doctor`: checks what cairn needs and says what to fix.

use std::process::ExitCode;

use anyhow::Result;

use crate::{config, wiring};

enum Level {
    Ok,
    Warn,
    Fail,
}

fn report(level: Level, what: &str, detail: &str) -> bool {
    let mark = match level {
        Level::Ok => "ok  ",
        Level::Warn => "warn",
        Level::Fail => "FAIL",
    };
    println!("[{mark}] {what}: {detail}");
    !matches!(level, Level::Fail)
}

/// Runs the command.
pub async fn run() -> Result<ExitCode> {
    let mut healthy = true;
    let loaded = match config::load() {
        Ok(l) => {
            let src = l
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "no cairn.toml, using defaults (run `cairn init`)".into());
            report(Level::Ok, "config", &src);
            l
        }
        Err(e) => {
            report(Level::Fail, "config", &format!("{e:#}"));
            println!("\nfix the config file first; nothing else can be checked without it");
            return Ok(ExitCode::FAILURE);
        }
    };
    healthy &= match wiring::provider(&loaded) {
        Ok(p) => report(
            Level::Ok,
            "model provider",
            &format!(
                "{} · model {} (key present; not verified without a request)",
                p.name(),
                if p.default_model().is_empty() {
                    "(the server's first)"
                } else {
                    p.default_model()
                }
            ),
        ),
        Err(e) => report(Level::Fail, "model provider", &e.to_string()),
    };
    healthy &= match wiring::store(&loaded).await {
        Ok(store) => match (store.ping().await, store.schema_version().await) {
            (Ok(()), Ok(v)) => report(
                Level::Ok,
                "database",
                &format!("{} (schema v{v})", loaded.database().display()),
            ),
            (Err(e), _) | (_, Err(e)) => report(Level::Fail, "database", &e.to_string()),
        },
        Err(e) => report(Level::Fail, "database", &format!("{e:#}")),
    };
    healthy &= match wiring::embedder(&loaded) {
        Ok(None) => report(
            Level::Ok,
            "memory",
            "full-text search only (set memory.model_dir to an embedding model for search by meaning)",
        ),
        Ok(Some(e)) => report(
            Level::Ok,
            "memory",
            &format!("embeddings from {} (loaded at first use)", e.model_id()),
        ),
        Err(e) => report(Level::Fail, "memory", &format!("{e:#}")),
    };
    let channels = &loaded.config.channels;
    let problems = channels.problems();
    let configured = usize::from(channels.telegram.is_some())
        + usize::from(channels.slack.is_some())
        + channels.webhook.len();
    if configured == 0 {
        report(
            Level::Ok,
            "channels",
            "none configured (see [channels] in cairn.toml)",
        );
    } else if problems.is_empty() {
        report(Level::Ok, "channels", &format!("{configured} configured"));
    }
    for p in &problems {
        let level = if p.fatal { Level::Fail } else { Level::Warn };
        healthy &= report(level, &format!("channels.{}", p.channel), &p.message);
    }
    let ws = loaded.workspaces_dir();
    let probe = ws.join(".cairn-doctor");
    healthy &= match std::fs::create_dir_all(&ws)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe))
    {
        Ok(()) => report(
            Level::Ok,
            "workspaces",
            &format!("{} is writable", ws.display()),
        ),
        Err(e) => report(Level::Fail, "workspaces", &format!("{}: {e}", ws.display())),
    };
    healthy &= match which("sh") {
        Some(p) => report(Level::Ok, "shell", &format!("{p} (used by the exec tool)")),
        None => report(
            Level::Fail,
            "shell",
            "no `sh` on PATH: the exec tool cannot run",
        ),
    };
    healthy &= sandbox_checks(&loaded);
    if healthy {
        println!("\nall required checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nsome checks failed: see the FAIL lines above");
        Ok(ExitCode::FAILURE)
    }
}

/// Whether the agents' sandbox profiles can run here, how the process and
/// memory limits are enforced, and who commands run as.
fn sandbox_checks(loaded: &config::Loaded) -> bool {
    use cairn_tools::sandbox::{Availability, ProcessLimit, probe};
    let policy = match wiring::sandbox_policy(loaded) {
        Ok(p) => p,
        Err(e) => return report(Level::Fail, "sandbox", &format!("{e:#}")),
    };
    let mut sandboxed: Vec<String> = loaded
        .config
        .agents
        .iter()
        .filter(|(_, a)| a.sandbox != cairn_core::SandboxProfile::Host)
        .map(|(n, _)| n.clone())
        .collect();
    if !loaded.config.agents.contains_key("default") {
        sandboxed.push("default".into());
    }
    let mut ok = match probe(policy.bwrap.as_deref()) {
        Availability::Ready(p) => report(
            Level::Ok,
            "sandbox",
            &format!("bubblewrap at {} starts namespace sandboxes", p.display()),
        ),
        Availability::Missing(why) if sandboxed.is_empty() => report(
            Level::Warn,
            "sandbox",
            &format!("{why} (no agent needs it)"),
        ),
        Availability::Missing(why) => report(
            Level::Fail,
            "sandbox",
            &format!(
                "{why}; agents {} cannot run commands until bubblewrap works (Debian/Ubuntu: apt-get install bubblewrap)",
                sandboxed.join(", ")
            ),
        ),
    };
    for (name, a) in &loaded.config.agents {
        if a.sandbox == cairn_core::SandboxProfile::Host {
            ok &= report(
                Level::Warn,
                "sandbox",
                &format!("agent {name} runs commands unsandboxed (sandbox = \"host\")"),
            );
        }
    }
    match &policy.landlock_helper {
        None => {
            ok &= report(
                Level::Warn,
                "landlock",
                "cairn-sandbox-init is not installed beside cairn: sandboxes run without the Landlock layer (cargo install --path crates/cairn-cli installs both)",
            )
        }
        Some(helper) => {
            use cairn_tools::sandbox::landlock::{Enforcement, probe as landlock};
            ok &= match landlock(helper) {
                Enforcement::Full => report(
                    Level::Ok,
                    "landlock",
                    "enforced inside sandboxes (files, abstract sockets, signals)",
                ),
                Enforcement::Partial => report(
                    Level::Ok,
                    "landlock",
                    "partly enforced inside sandboxes (an older kernel: no socket or signal scoping)",
                ),
                Enforcement::None => report(
                    Level::Warn,
                    "landlock",
                    "not available in this kernel: sandboxes rely on namespaces alone",
                ),
            };
        }
    }
    ok &= match ProcessLimit::detect() {
        ProcessLimit::Cgroup => report(Level::Ok, "process limit", "a pids cgroup per command"),
        ProcessLimit::Rlimit => report(Level::Ok, "process limit", "RLIMIT_NPROC per command"),
        ProcessLimit::Unenforced => report(
            Level::Warn,
            "process limit",
            "running as root without a writable pids cgroup: a fork bomb is stopped only by its timeout; run cairn as an ordinary user",
        ),
    };
    ok &= if cairn_tools::sandbox::memory_limited_per_command() {
        report(
            Level::Ok,
            "memory limit",
            "a memory cgroup per command (all its processes together)",
        )
    } else {
        report(
            Level::Warn,
            "memory limit",
            "no memory cgroup can be made here (cgroup v2 needs the memory controller delegated to cairn's cgroup, e.g. systemd Delegate=yes): memory_mb holds per process only, so a command's processes together may take more",
        )
    };
    ok & identity_check(&policy)
}

/// Who sandboxed commands run as.
fn identity_check(policy: &cairn_tools::sandbox::SandboxPolicy) -> bool {
    match policy.run_as {
        Some(who) => report(
            Level::Ok,
            "command user",
            &format!(
                "this server runs as root; commands run as {} (tools.sandbox.user)",
                who.describe()
            ),
        ),
        None => report(
            Level::Ok,
            "command user",
            &format!(
                "commands run as this user (uid {}), in a user namespace of their own",
                nix::unistd::geteuid()
            ),
        ),
    }
}

fn which(cmd: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
