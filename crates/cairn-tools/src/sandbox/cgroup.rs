//! A cgroup per command: its process count (fork bombs) and its memory,
//! summed over every process it starts. RLIMIT_NPROC is not enforced for
//! root and counts all of a user's tasks; RLIMIT_AS bounds one process,
//! so four processes of one command could hold four times the limit. A
//! cgroup counts exactly the command's tasks and pages (tmpfs pages in its
//! `/tmp` included), whoever runs the server.
//!
//! Where cgroups come from: cgroup v1's `pids` and `memory` hierarchies
//! (each a group of its own), or a cgroup v2 subtree of this process's own
//! cgroup with the controllers delegated. Whatever is missing falls back
//! to rlimits, and `cairn doctor` says which.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How the process limit is enforced here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessLimit {
    /// A pids cgroup per command.
    Cgroup,
    /// RLIMIT_NPROC (not root).
    Rlimit,
    /// Running as root with no usable pids cgroup: not enforced.
    Unenforced,
}

impl ProcessLimit {
    /// What this host gives.
    pub fn detect() -> ProcessLimit {
        if parent_dir(Controller::Pids).is_some() {
            ProcessLimit::Cgroup
        } else if nix::unistd::geteuid().is_root() {
            ProcessLimit::Unenforced
        } else {
            ProcessLimit::Rlimit
        }
    }
}

/// Whether a command's memory is limited as a whole (a memory cgroup), or
/// only per process (RLIMIT_AS).
pub fn memory_limited_per_command() -> bool {
    parent_dir(Controller::Memory).is_some()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Controller {
    Pids,
    Memory,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Pids => "pids",
            Controller::Memory => "memory",
        }
    }
}

/// One cgroup directory a command joins.
struct Group {
    dir: PathBuf,
    procs: Arc<std::fs::File>,
    /// The OOM kills counted in it before the command (pooled groups keep
    /// their counters).
    oom_before: u64,
}

/// The cgroups holding one command; removed (or pooled) when dropped.
pub struct CommandCgroup {
    groups: Vec<Group>,
    /// Whether one of them is a pids group (else RLIMIT_NPROC is used).
    limits_procs: bool,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Emptied cgroups kept for the next command: making and removing one
/// costs about a millisecond per command.
static POOL: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
const POOL_MAX: usize = 32;

/// What a command's cgroups allow.
#[derive(Debug, Clone, Copy)]
pub struct CgroupLimits {
    /// Tasks at once.
    pub max_procs: u64,
    /// Bytes of memory for all its processes (0: no memory cgroup).
    pub memory_bytes: u64,
}

impl CommandCgroup {
    /// Fresh cgroups with these limits, or `None` where none can be made.
    /// Each controller stands alone: a memory group that cannot be made
    /// leaves the pids group (and the other way round), and whatever was
    /// made is released by the value's drop.
    pub fn create(limits: CgroupLimits) -> Option<CommandCgroup> {
        let mut made = CommandCgroup {
            groups: Vec::new(),
            limits_procs: false,
        };
        let pids = parent_dir(Controller::Pids);
        if let Some(g) = pids
            .as_deref()
            .and_then(|p| make_group(p, |dir| set_pids(dir, limits.max_procs)))
        {
            made.groups.push(g);
            made.limits_procs = true;
        }
        if let Some(m) = parent_dir(Controller::Memory).filter(|_| limits.memory_bytes > 0) {
            let memory = match made.groups.first() {
                // cgroup v2: one group holds both.
                Some(g) if Some(&m) == pids.as_ref() => set_memory(&g.dir, limits.memory_bytes),
                _ => make_group(&m, |dir| set_memory(dir, limits.memory_bytes))
                    .map(|g| made.groups.push(g)),
            };
            if memory.is_none() {
                tracing::debug!("no memory cgroup for this command: memory_mb holds per process");
            }
        }
        for g in &mut made.groups {
            g.oom_before = oom_kills(&g.dir);
        }
        (!made.groups.is_empty()).then_some(made)
    }

    /// Whether a pids group holds it (else RLIMIT_NPROC is used).
    pub fn limits_procs(&self) -> bool {
        self.limits_procs
    }

    /// The open `cgroup.procs` files, written by the child before it execs.
    pub fn procs_fds(&self) -> Vec<Arc<std::fs::File>> {
        self.groups.iter().map(|g| g.procs.clone()).collect()
    }

    /// Whether the kernel killed one of its processes for memory.
    pub fn oom_killed(&self) -> bool {
        self.groups.iter().any(|g| oom_kills(&g.dir) > g.oom_before)
    }

    /// Its processes now.
    pub fn members(&self) -> Vec<i32> {
        let Some(g) = self.groups.first() else {
            return Vec::new();
        };
        std::fs::read_to_string(g.dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs every task in it (v2 has `cgroup.kill`; v1 does not).
    pub fn kill_all(&self) {
        for g in &self.groups {
            if std::fs::write(g.dir.join("cgroup.kill"), "1").is_ok() {
                return;
            }
        }
        // Tasks may fork while we kill; a few passes settle it, since the
        // limit bounds how many there can be.
        for _ in 0..8 {
            let pids = self.members();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // ESRCH (gone meanwhile) is the normal case.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

fn make_group(parent: &Path, configure: impl Fn(&Path) -> Option<()>) -> Option<Group> {
    let pooled = POOL.lock().ok().and_then(|mut p| {
        let i = p.iter().position(|d| d.parent() == Some(parent))?;
        Some(p.swap_remove(i))
    });
    let dir = match pooled {
        Some(dir) => dir,
        None => {
            let name = format!(
                "cmd-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let dir = parent.join(name);
            std::fs::create_dir(&dir).ok()?;
            dir
        }
    };
    let made = configure(&dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .ok()
    });
    match made {
        Some(procs) => Some(Group {
            dir,
            procs: Arc::new(procs),
            oom_before: 0,
        }),
        None => {
            if let Err(e) = std::fs::remove_dir(&dir) {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot remove a cgroup");
            }
            None
        }
    }
}

/// `max` tasks for the command. A pooled group may still be charged for
/// tasks of earlier commands: a pid namespace's tasks are released about
/// a second and a half after they exit (seen on 6.18, cgroup v1), so at
/// hundreds of commands a second the charges of the dead would otherwise
/// refuse the living their forks. They are added to the limit.
fn set_pids(dir: &Path, max: u64) -> Option<()> {
    let ghosts: u64 = std::fs::read_to_string(dir.join("pids.current"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    std::fs::write(dir.join("pids.max"), max.saturating_add(ghosts).to_string()).ok()
}

/// v2: `memory.max`, no swap; v1: `memory.limit_in_bytes` and, where swap
/// is accounted, the same for memory plus swap (set after, as v1 requires).
fn set_memory(dir: &Path, bytes: u64) -> Option<()> {
    let bytes = bytes.to_string();
    if dir.join("memory.max").exists() {
        std::fs::write(dir.join("memory.max"), &bytes).ok()?;
        if dir.join("memory.swap.max").exists() {
            std::fs::write(dir.join("memory.swap.max"), "0").ok()?;
        }
        return Some(());
    }
    // A pooled group may have a larger memsw limit from before: lowering
    // memory first is always allowed, memsw must stay >= memory.
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if memsw.exists() {
        std::fs::write(dir.join("memory.limit_in_bytes"), &bytes).ok()?;
        if std::fs::write(&memsw, &bytes).is_err() {
            std::fs::write(&memsw, "-1").ok()?;
            std::fs::write(dir.join("memory.limit_in_bytes"), &bytes).ok()?;
            std::fs::write(&memsw, &bytes).ok()?;
        }
        return Some(());
    }
    std::fs::write(dir.join("memory.limit_in_bytes"), &bytes).ok()
}

/// OOM kills counted in a memory cgroup (v2 `memory.events`, v1
/// `memory.oom_control`); 0 where there is no counter.
fn oom_kills(dir: &Path) -> u64 {
    ["memory.events", "memory.oom_control"]
        .iter()
        .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

impl Drop for CommandCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for g in &self.groups {
            release(&g.dir);
        }
    }
}

/// Waits briefly for killed tasks to leave, then pools or removes `dir`.
fn release(dir: &Path) {
    for _ in 0..50 {
        let empty = std::fs::read_to_string(dir.join("cgroup.procs"))
            .map(|t| t.trim().is_empty())
            .unwrap_or(false);
        if empty {
            if let Ok(mut pool) = POOL.lock()
                && pool.len() < POOL_MAX
            {
                pool.push(dir.to_path_buf());
                return;
            }
            if std::fs::remove_dir(dir).is_ok() {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    tracing::warn!(dir = %dir.display(), "a command's cgroup could not be emptied");
}

/// Where per-command cgroups of `controller` go: `<v1 hierarchy>/<own>/cairn`,
/// or a `cairn` child of this process's own cgroup v2 when the controller
/// can be enabled for it.
fn parent_dir(controller: Controller) -> Option<PathBuf> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static FOUND: OnceLock<Mutex<HashMap<Controller, Option<PathBuf>>>> = OnceLock::new();
    let cache = FOUND.get_or_init(Default::default);
    let mut map = cache.lock().ok()?;
    map.entry(controller)
        .or_insert_with(|| {
            let found = find_parent(controller);
            if let Some(dir) = &found {
                remove_leftovers(dir);
            }
            found
        })
        .clone()
}

/// Empty cgroups pooled by processes that have since exited.
fn remove_leftovers(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("cmd-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            // Fails, harmlessly, if something still runs in it.
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

fn find_parent(controller: Controller) -> Option<PathBuf> {
    let name = controller.name();
    let v1 = Path::new("/sys/fs/cgroup").join(name);
    if v1.join("cgroup.procs").exists() {
        let own = own_cgroup(name)?;
        let dir = v1.join(own.trim_start_matches('/')).join("cairn");
        let knob = match controller {
            Controller::Pids => "pids.max",
            Controller::Memory => "memory.limit_in_bytes",
        };
        if std::fs::create_dir_all(&dir).is_ok() && dir.join(knob).exists() {
            if controller == Controller::Memory {
                // Children count toward it (the default on recent kernels,
                // where the file refuses writes: nothing to do then).
                if let Err(e) = std::fs::write(dir.join("memory.use_hierarchy"), "1") {
                    tracing::debug!(error = %e, "memory.use_hierarchy left as it is");
                }
            }
            return Some(dir);
        }
        return None;
    }
    for mount in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let root = Path::new(mount);
        if !root.join("cgroup.controllers").exists() {
            continue;
        }
        let own = own_cgroup("")?;
        let dir = root.join(own.trim_start_matches('/')).join("cairn");
        if std::fs::create_dir_all(&dir).is_err() {
            continue;
        }
        // Children of `cairn` get the controller's files once `cairn`
        // delegates it; it holds no processes itself, so that is allowed.
        let controllers =
            std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == name)
            && std::fs::write(dir.join("cgroup.subtree_control"), format!("+{name}")).is_ok()
        {
            return Some(dir);
        }
    }
    None
}

/// This process's cgroup path in the hierarchy with `controller` (v1), or
/// the unified one (`""`).
fn own_cgroup(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if controller.is_empty() {
            names.is_empty()
        } else {
            names.split(',').any(|n| n == controller)
        };
        hit.then(|| path.to_string())
    })
}

/// Tasks on the system now (from /proc/loadavg), an upper bound of the
/// user's own: RLIMIT_NPROC is set to this plus the command's allowance.
pub fn tasks_now() -> u64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .nth(3)
                .and_then(|f| f.split('/').nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(4096)
}
