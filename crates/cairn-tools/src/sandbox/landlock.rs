//! Landlock, the second layer inside the bubblewrap sandbox. bubblewrap
//! already makes the host read-only; Landlock adds what namespaces leave
//! open: with network on, the sandbox shares the host's network namespace,
//! so without it a command could connect to the host's abstract Unix
//! sockets (D-Bus, X11, other daemons) or signal processes outside its
//! domain. Landlock cannot be applied before bubblewrap (a Landlock domain
//! may not mount), so a small helper installed beside `cairn`
//! (`cairn-sandbox-init`) runs first inside the sandbox, restricts itself,
//! then execs the command.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ::landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    path_beneath_rules,
};

/// Where the helper is mounted inside the sandbox (under the emptied `/run`).
pub const INIT_PATH: &str = "/run/cairn-sandbox-init";

/// How much of Landlock the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Every requested restriction.
    Full,
    /// Some (an older kernel: e.g. no socket scoping).
    Partial,
    /// None: the kernel has no Landlock, or it is disabled.
    None,
}

impl Enforcement {
    /// The word `--probe` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Full => "full",
            Enforcement::Partial => "partial",
            Enforcement::None => "none",
        }
    }
}

/// Restricts this process: read and execute everywhere, write only under
/// `writable`, no abstract Unix sockets or signals outside the domain.
pub fn restrict(writable: &[PathBuf]) -> Result<Enforcement, String> {
    let abi = ABI::V6;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.scope(Scope::AbstractUnixSocket | Scope::Signal))
        .and_then(landlock::Ruleset::create)
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(writable, AccessFs::from_all(abi))))
        .and_then(landlock::RulesetCreated::restrict_self)
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        _ => Enforcement::None,
    })
}

/// Whether the helper at `helper` gets Landlock enforced here (asked once,
/// by running it: the real path, not a guess from kernel files).
pub fn probe(helper: &Path) -> Enforcement {
    static FOUND: OnceLock<Enforcement> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let out = std::process::Command::new(helper)
            .args(["--probe", "--write", "/tmp", "--", "true"])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => match String::from_utf8_lossy(&o.stdout).trim() {
                "full" => Enforcement::Full,
                "partial" => Enforcement::Partial,
                _ => Enforcement::None,
            },
            Ok(o) => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr).trim(), "the Landlock probe failed; sandboxes run without it");
                Enforcement::None
            }
            Err(e) => {
                tracing::warn!(helper = %helper.display(), error = %e, "cannot run the Landlock probe; sandboxes run without it");
                Enforcement::None
            }
        }
    })
}
