//! Where `exec` runs a command: inside a bubblewrap sandbox (new user, PID,
//! IPC and UTS namespaces, optionally no network; the host read-only, the
//! workspace writable, `$CAIRN_HOME`, homes and `/run` hidden), with an
//! environment built from an allowlist and resource limits, or — only when
//! an agent opts in with `sandbox = "host"` — directly on the host.
//!
//! bubblewrap is the field's standard unprivileged sandbox (Flatpak, Claude
//! Code, Codex on Linux); writing our own namespace setup would be larger and
//! less reviewed. Landlock alone cannot hide `/proc/<server>/environ`.

mod bwrap;
mod env;
pub mod landlock;
mod limits;
mod pids;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cairn_core::SandboxProfile;
use thiserror::Error;

pub use bwrap::{Availability, probe};
pub use limits::Limits;
pub use pids::ProcessLimit;

/// What every sandboxed command of this process is kept from.
#[derive(Debug, Clone, Default)]
pub struct SandboxPolicy {
    /// Host paths a command must not see (`$CAIRN_HOME`, the database, the
    /// config file): directories become empty, files read as empty.
    pub hidden: Vec<PathBuf>,
    /// Resource limits per command.
    pub limits: Limits,
    /// bubblewrap to use; `None` looks for `bwrap` on PATH.
    pub bwrap: Option<PathBuf>,
    /// What `http_fetch` may connect to.
    pub fetch: crate::net_guard::FetchPolicy,
    /// The cairn binary, run inside the sandbox to add Landlock before the
    /// command (`None`: bubblewrap alone).
    pub landlock_helper: Option<PathBuf>,
}

/// The sandbox one agent's calls run in.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// Shared policy.
    pub policy: std::sync::Arc<SandboxPolicy>,
    /// The agent's profile.
    pub profile: SandboxProfile,
    /// The agent's extra environment variables.
    pub env: std::collections::BTreeMap<String, String>,
}

/// Why a command could not be started in its sandbox.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// bubblewrap or user namespaces are missing; never falls back.
    #[error(
        "the {profile} sandbox is not available: {reason}. Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow unprivileged user namespaces, or set sandbox = \"host\" for this agent to run commands unsandboxed"
    )]
    Unavailable {
        /// The profile asked for.
        profile: &'static str,
        /// What is missing.
        reason: String,
    },
    /// Spawning failed.
    #[error("cannot start the command: {0}")]
    Spawn(#[from] std::io::Error),
}

/// What to start: the program and its arguments, variables on top of the
/// agent's, and host paths it may read that the sandbox would hide.
pub struct Launch<'a> {
    /// Program and arguments.
    pub argv: &'a [String],
    /// Extra variables.
    pub env: &'a std::collections::BTreeMap<String, String>,
    /// Paths bound read-only.
    pub read: &'a [PathBuf],
}

/// A started command and what confines it; dropping it kills everything.
pub struct Confined {
    /// The child (bwrap, or sh for `host`).
    pub child: tokio::process::Child,
    group: Option<nix::unistd::Pid>,
    cgroup: Option<pids::PidsCgroup>,
}

impl Confined {
    /// Kills the command and everything it started: the process group,
    /// the PID namespace through its init, and the cgroup's members.
    pub fn kill_all(&self) {
        if let Some(pgid) = self.group {
            // ESRCH (already gone) is the normal case.
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl Sandbox {
    /// The Landlock helper, when there is one and the kernel enforces it.
    fn landlock_helper(&self) -> Option<&Path> {
        let helper = self.policy.landlock_helper.as_deref()?;
        (landlock::probe(helper) != landlock::Enforcement::None).then_some(helper)
    }

    /// Starts `sh -c command` in `workspace` under this sandbox, stdout and
    /// stderr piped, stdin closed.
    pub fn spawn(
        &self,
        workspace: &Path,
        command: &str,
        timeout: Duration,
    ) -> Result<Confined, SandboxError> {
        let argv = ["sh".to_string(), "-c".to_string(), command.to_string()];
        let env = Default::default();
        let launch = Launch {
            argv: &argv,
            env: &env,
            read: &[],
        };
        self.start(workspace, launch, Stdio::null(), timeout)
    }

    /// Starts a long-lived program (an MCP server) in `workspace` under this
    /// sandbox: stdin, stdout and stderr piped, `launch.env` on top of the
    /// agent's, `launch.read` readable, CPU time limited to `cpu` in all.
    pub fn spawn_service(
        &self,
        workspace: &Path,
        launch: Launch<'_>,
        cpu: Duration,
    ) -> Result<Confined, SandboxError> {
        self.start(workspace, launch, Stdio::piped(), cpu)
    }

    fn start(
        &self,
        workspace: &Path,
        launch: Launch<'_>,
        stdin: Stdio,
        timeout: Duration,
    ) -> Result<Confined, SandboxError> {
        let Launch { argv, env, read } = launch;
        let Some((program, args)) = argv.split_first() else {
            return Err(SandboxError::Spawn(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no program to run",
            )));
        };
        let mut cmd = match self.profile {
            SandboxProfile::Host => {
                let mut c = tokio::process::Command::new(program);
                c.args(args).current_dir(workspace);
                c
            }
            SandboxProfile::Workspace | SandboxProfile::Offline => {
                let bwrap = match probe(self.policy.bwrap.as_deref()) {
                    Availability::Ready(path) => path.clone(),
                    Availability::Missing(reason) => {
                        return Err(SandboxError::Unavailable {
                            profile: self.profile.as_str(),
                            reason: reason.clone(),
                        });
                    }
                };
                let mut c = tokio::process::Command::new(bwrap);
                c.args(bwrap::args(&self.policy.hidden, workspace, self.profile));
                for p in read {
                    c.arg("--ro-bind").arg(p).arg(p);
                }
                if let Some(helper) = self.landlock_helper() {
                    c.args([
                        "--ro-bind".as_ref(),
                        helper.as_os_str(),
                        landlock::INIT_PATH.as_ref(),
                    ])
                    .arg("--")
                    .arg(landlock::INIT_PATH)
                    .args(["--write".as_ref(), workspace.as_os_str()])
                    .args(["--write", "/tmp", "--write", "/dev"]);
                }
                c.arg("--").arg(program).args(args).current_dir(workspace);
                c
            }
        };
        let mut vars = self.env.clone();
        vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        cmd.env_clear()
            .envs(env::allowed(workspace, &vars))
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let cgroup = pids::PidsCgroup::create(self.policy.limits.max_procs);
        limits::apply_in_child(&mut cmd, &self.policy.limits, timeout, cgroup.as_ref());
        let child = cmd.spawn()?;
        let group = child.id().map(|id| nix::unistd::Pid::from_raw(id as i32));
        Ok(Confined {
            child,
            group,
            cgroup,
        })
    }
}
