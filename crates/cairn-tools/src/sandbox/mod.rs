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
mod cgroup;
pub mod egress;
mod env;
pub mod landlock;
mod limits;
mod owner;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cairn_core::SandboxProfile;
use thiserror::Error;

pub use bwrap::{Availability, probe};
pub use cgroup::{ProcessLimit, memory_limited_per_command};
pub use limits::Limits;
pub use owner::{DEDICATED_USER, RunAs};

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
    /// What a `workspace` command's network may connect to besides public
    /// addresses (`tools.sandbox.network_allow`).
    pub network: crate::net_guard::FetchPolicy,
    /// Who commands run as when the server is root (`None`: this
    /// process's own user).
    pub run_as: Option<RunAs>,
    /// `cairn-sandbox-init`, run inside the sandbox before the command: it
    /// adds Landlock, starts the egress relay and gives up root (`None`:
    /// bubblewrap alone, no network for `workspace`, refused as root).
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
    /// Networks the agent's commands may reach although not public.
    pub allow: Vec<crate::net_guard::Network>,
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
    cgroup: Option<std::sync::Arc<cgroup::CommandCgroup>>,
    /// The command's egress proxy, stopped with it.
    _egress: Option<egress::Egress>,
}

impl Confined {
    /// Whether the kernel killed one of its processes for going past the
    /// command's memory limit.
    pub fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| c.oom_killed())
    }

    /// What measures its writes, or `None` without a cgroup to find its
    /// processes by.
    pub fn disk_meter(&self) -> Option<DiskMeter> {
        self.cgroup.clone().map(DiskMeter)
    }

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

/// Counts what a command's processes write to storage.
pub struct DiskMeter(std::sync::Arc<cgroup::CommandCgroup>);

impl DiskMeter {
    /// Bytes written so far by its live processes and, through them, by
    /// the ones they reaped.
    pub fn written(&self) -> u64 {
        self.0.members().iter().map(|pid| written_by(*pid)).sum()
    }
}

/// `write_bytes - cancelled_write_bytes` of one process (with its reaped
/// children), 0 when it is gone.
fn written_by(pid: i32) -> u64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/io")) else {
        return 0;
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    field("write_bytes:").saturating_sub(field("cancelled_write_bytes:"))
}

impl Drop for Confined {
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl Sandbox {
    /// `agent`'s sandbox under `policy`; network exceptions that do not
    /// parse (refused where the agent was defined) are left out and logged.
    pub fn for_agent(
        policy: std::sync::Arc<SandboxPolicy>,
        agent: &cairn_core::AgentSpec,
    ) -> Sandbox {
        let allow = agent
            .network_allow
            .iter()
            .filter_map(|n| match crate::net_guard::Network::parse(n) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(agent = %agent.name, "network_allow: {e}; left out");
                    None
                }
            })
            .collect();
        Sandbox {
            policy,
            profile: agent.sandbox,
            env: agent.env.clone(),
            allow,
        }
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
        let Some((program, args)) = launch.argv.split_first() else {
            return Err(SandboxError::Spawn(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no program to run",
            )));
        };
        let mut prepared = match self.profile {
            SandboxProfile::Host => {
                let mut c = tokio::process::Command::new(program);
                c.args(args).current_dir(workspace);
                Prepared::plain(c)
            }
            SandboxProfile::Workspace | SandboxProfile::Offline => {
                self.bwrap_command(workspace, launch.read, launch.argv)?
            }
        };
        let mut vars = self.env.clone();
        vars.extend(launch.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut vars = env::allowed(workspace, &vars);
        if prepared.egress.is_some() {
            vars.extend(egress::proxy_env());
        }
        let cmd = &mut prepared.cmd;
        cmd.env_clear()
            .envs(vars)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let cgroup = cgroup::CommandCgroup::create(cgroup::CgroupLimits {
            max_procs: self.policy.limits.max_procs,
            memory_bytes: self.policy.limits.memory_mb.saturating_mul(1 << 20),
        });
        limits::apply_in_child(cmd, &self.policy.limits, timeout, cgroup.as_ref());
        let cgroup = cgroup.map(std::sync::Arc::new);
        let child = cmd.spawn()?;
        let group = child.id().map(|id| nix::unistd::Pid::from_raw(id as i32));
        Ok(Confined {
            child,
            group,
            cgroup,
            _egress: prepared.egress,
        })
    }

    /// bubblewrap's command for `argv` in `workspace`, with `read` bound
    /// read-only; as the unprivileged identity when the server is root.
    fn bwrap_command(
        &self,
        workspace: &Path,
        read: &[PathBuf],
        argv: &[String],
    ) -> Result<Prepared, SandboxError> {
        let bwrap = match probe(self.policy.bwrap.as_deref()) {
            Availability::Ready(path) => path,
            Availability::Missing(reason) => {
                return Err(SandboxError::Unavailable {
                    profile: self.profile.as_str(),
                    reason,
                });
            }
        };
        let run_as = self.policy.run_as;
        let helper = self.policy.landlock_helper.as_deref();
        if let Some(who) = run_as {
            if helper.is_none() {
                return Err(SandboxError::Unavailable {
                    profile: self.profile.as_str(),
                    reason: format!(
                        "this server runs as root and needs cairn-sandbox-init (installed beside cairn) to run commands as {}",
                        who.describe()
                    ),
                });
            }
            who.adopt(workspace)?;
        }
        let mut c = tokio::process::Command::new(bwrap);
        c.args(bwrap::args(
            &self.policy.hidden,
            workspace,
            read,
            run_as.is_some(),
        ));
        let mut egress = None;
        if let Some(helper) = helper {
            c.arg("--ro-bind").arg(helper).arg(landlock::INIT_PATH);
            let mut init: Vec<std::ffi::OsString> = vec![landlock::INIT_PATH.into()];
            if let Some(who) = run_as {
                init.extend(["--user".into(), format!("{}:{}", who.uid, who.gid).into()]);
            }
            if self.profile == SandboxProfile::Workspace {
                let proxy = egress::Egress::start(self.egress_policy(), run_as.map(|r| r.uid))?;
                c.arg("--bind").arg(proxy.socket()).arg(egress::SOCKET_PATH);
                init.extend(["--egress".into(), egress::SOCKET_PATH.into()]);
                egress = Some(proxy);
            }
            if landlock::probe(helper) != landlock::Enforcement::None {
                init.push("--landlock".into());
                for w in [workspace, Path::new("/tmp"), Path::new("/dev")] {
                    init.extend(["--write".into(), w.as_os_str().to_owned()]);
                }
            }
            c.arg("--").args(init);
        } else if self.profile == SandboxProfile::Workspace {
            tracing::warn!(
                "cairn-sandbox-init is not installed beside cairn: the workspace profile runs without network"
            );
        }
        c.arg("--").args(argv).current_dir(workspace);
        Ok(Prepared { cmd: c, egress })
    }

    /// The rules for this sandbox's network: public addresses, plus the
    /// host-wide and the agent's exceptions.
    fn egress_policy(&self) -> std::sync::Arc<crate::net_guard::FetchPolicy> {
        let mut allow = self.policy.network.allow.clone();
        allow.extend(self.allow.iter().copied());
        std::sync::Arc::new(crate::net_guard::FetchPolicy { allow })
    }
}

/// A command ready to spawn, with what must live as long as it.
struct Prepared {
    cmd: tokio::process::Command,
    egress: Option<egress::Egress>,
}

impl Prepared {
    fn plain(cmd: tokio::process::Command) -> Prepared {
        Prepared { cmd, egress: None }
    }
}
