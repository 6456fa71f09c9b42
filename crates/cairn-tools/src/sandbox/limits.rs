//! Resource limits set in the child between fork and exec, so they hold
//! from the command's first instruction (and for bubblewrap itself).

use std::time::Duration;

use nix::sys::resource::{Resource, setrlimit};

use super::cgroup::CommandCgroup;

/// Per-command resource limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Memory, MiB (0: unlimited): for all of a command's processes
    /// together where a memory cgroup can be made, and as the address
    /// space of each process always.
    pub memory_mb: u64,
    /// Processes and threads the command may have at once.
    pub max_procs: u64,
    /// Largest file a command may write, MiB.
    pub file_size_mb: u64,
    /// Bytes a command may write to disk in all, MiB (0: unlimited);
    /// measured every 50 ms over its processes, so a fast writer passes it
    /// by what it writes in that time.
    pub disk_mb: u64,
    /// CPU seconds per process; 0: the call's timeout.
    pub cpu_s: u64,
    /// Output read from a command before it is killed, MiB (the model sees
    /// only the capped head and tail anyway).
    pub output_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 8 * 1024,
            max_procs: 256,
            file_size_mb: 1024,
            disk_mb: 4 * 1024,
            cpu_s: 0,
            output_mb: 64,
        }
    }
}

/// The values handed to setrlimit, computed before fork.
#[derive(Clone, Copy)]
struct Values {
    address_space: Option<u64>,
    cpu: u64,
    file_size: u64,
    procs: Option<u64>,
}

/// Arranges for the limits (and the cgroup, when there is one) to be set
/// in the child just before it execs.
pub fn apply_in_child(
    cmd: &mut tokio::process::Command,
    limits: &Limits,
    timeout: Duration,
    cgroup: Option<&CommandCgroup>,
) {
    let cpu = if limits.cpu_s == 0 {
        timeout.as_secs().max(1)
    } else {
        limits.cpu_s
    };
    let values = Values {
        address_space: (limits.memory_mb > 0).then(|| limits.memory_mb.saturating_mul(1 << 20)),
        cpu,
        file_size: limits.file_size_mb.saturating_mul(1 << 20),
        // With a pids cgroup the kernel counts exactly this command's tasks;
        // without one, RLIMIT_NPROC counts all of the user's tasks, so the
        // limit is what exists now plus the command's allowance.
        procs: match cgroup {
            Some(c) if c.limits_procs() => None,
            _ => Some(super::cgroup::tasks_now().saturating_add(limits.max_procs)),
        },
    };
    let procs_files = cgroup.map(CommandCgroup::procs_fds).unwrap_or_default();
    pre_exec(cmd, values, procs_files);
}

// The one unsafe block: `pre_exec` runs between fork and exec, where only
// async-signal-safe calls are allowed. It makes raw syscalls (setrlimit,
// write) with values prepared before the fork, and allocates nothing.
#[allow(unsafe_code)]
fn pre_exec(
    cmd: &mut tokio::process::Command,
    v: Values,
    procs_files: Vec<std::sync::Arc<std::fs::File>>,
) {
    // SAFETY: the closure only calls setrlimit(2), umask(2) and write(2) on
    // files opened before the fork; all are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for f in &procs_files {
                use std::io::Write;
                // "0" moves the writing process (this child) into the cgroup.
                (&**f).write_all(b"0")?;
            }
            if let Some(bytes) = v.address_space {
                setrlimit(Resource::RLIMIT_AS, bytes, bytes)?;
            }
            setrlimit(Resource::RLIMIT_CPU, v.cpu, v.cpu)?;
            setrlimit(Resource::RLIMIT_FSIZE, v.file_size, v.file_size)?;
            setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
            // The server's own umask is 077; what a command writes in its
            // workspace is the workspace's business.
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            if let Some(n) = v.procs {
                setrlimit(Resource::RLIMIT_NPROC, n, n)?;
            }
            Ok(())
        });
    }
}
