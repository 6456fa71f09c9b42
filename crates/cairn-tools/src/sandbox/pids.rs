//! Fork-bomb protection. RLIMIT_NPROC is not enforced for root (the
//! kernel exempts uid 0), and for other users it counts all of the user's
//! tasks; a pids cgroup per command counts exactly the command's tasks
//! whoever runs the server. So: a cgroup where one can be made (cgroup v1
//! `pids` hierarchy, or a cgroup v2 subtree with the pids controller
//! delegated), else RLIMIT_NPROC.

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
        if let Some(cg) = PidsCgroup::create(64) {
            drop(cg);
            ProcessLimit::Cgroup
        } else if nix::unistd::geteuid().is_root() {
            ProcessLimit::Unenforced
        } else {
            ProcessLimit::Rlimit
        }
    }
}

/// A pids cgroup holding one command; removed when dropped.
pub struct PidsCgroup {
    dir: PathBuf,
    procs: Arc<std::fs::File>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Emptied cgroups kept for the next command: making and removing one
/// costs about a millisecond per command.
static POOL: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
const POOL_MAX: usize = 16;

impl PidsCgroup {
    /// A fresh cgroup allowing `max` tasks, or `None` where none can be made.
    pub fn create(max: u64) -> Option<PidsCgroup> {
        let parent = parent_dir()?;
        let pooled = POOL.lock().ok().and_then(|mut p| p.pop());
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
        let made = (|| {
            std::fs::write(dir.join("pids.max"), max.to_string()).ok()?;
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .ok()
        })();
        match made {
            Some(procs) => Some(PidsCgroup {
                dir,
                procs: Arc::new(procs),
            }),
            None => {
                if let Err(e) = std::fs::remove_dir(&dir) {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot remove a cgroup");
                }
                None
            }
        }
    }

    /// The open `cgroup.procs`, written by the child before it execs.
    pub fn procs_fd(&self) -> Arc<std::fs::File> {
        self.procs.clone()
    }

    /// SIGKILLs every task in the cgroup (v2 has `cgroup.kill`; v1 does not).
    pub fn kill_all(&self) {
        if std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        // Tasks may fork while we kill; a few passes settle it, since the
        // cgroup's limit bounds how many there can be.
        for _ in 0..8 {
            let Ok(text) = std::fs::read_to_string(self.dir.join("cgroup.procs")) else {
                return;
            };
            let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        self.kill_all();
        // Killed tasks leave the cgroup once reaped; wait briefly for that.
        for _ in 0..50 {
            let empty = std::fs::read_to_string(self.dir.join("cgroup.procs"))
                .map(|t| t.trim().is_empty())
                .unwrap_or(false);
            if empty {
                if let Ok(mut pool) = POOL.lock()
                    && pool.len() < POOL_MAX
                {
                    pool.push(self.dir.clone());
                    return;
                }
                if std::fs::remove_dir(&self.dir).is_ok() {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        tracing::warn!(dir = %self.dir.display(), "a command's cgroup could not be emptied");
    }
}

/// Where per-command cgroups go: `<pids v1>/cairn`, or a `cairn` child of
/// this process's own cgroup v2 when the pids controller can be enabled
/// for it.
fn parent_dir() -> Option<PathBuf> {
    static PARENT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    PARENT
        .get_or_init(|| {
            let found = find_parent();
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

fn find_parent() -> Option<PathBuf> {
    let v1 = Path::new("/sys/fs/cgroup/pids");
    if v1.join("cgroup.procs").exists() {
        let own = own_cgroup("pids")?;
        let dir = v1.join(own.trim_start_matches('/')).join("cairn");
        if std::fs::create_dir_all(&dir).is_ok() && dir.join("pids.max").exists() {
            return Some(dir);
        }
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
        // Children of `cairn` get a pids.max once `cairn` delegates pids;
        // it holds no processes itself, so that is allowed.
        let controllers =
            std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "pids")
            && std::fs::write(dir.join("cgroup.subtree_control"), "+pids").is_ok()
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
