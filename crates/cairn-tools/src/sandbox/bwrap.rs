//! The bubblewrap command line for a profile, and whether bubblewrap works
//! on this host (found, and able to create user namespaces).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Whether sandboxed profiles can run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// bubblewrap at this path works.
    Ready(PathBuf),
    /// Why not.
    Missing(String),
}

/// Host directories replaced by an empty tmpfs: other users' homes and
/// root's, runtime sockets (databases, Docker, D-Bus under `/run`), and
/// shared temporary directories.
const MASKED_DIRS: &[&str] = &["/home", "/root", "/run", "/tmp", "/var/tmp", "/var/run"];

/// Masks that stay writable by everyone, as on the host.
const SHARED_TMP: &[&str] = &["/tmp", "/var/tmp"];

/// Finds `bwrap` (the configured path, else on PATH) and checks once per
/// path that it can start a namespace sandbox here.
pub fn probe(configured: Option<&Path>) -> Availability {
    static CACHE: OnceLock<Mutex<HashMap<Option<PathBuf>, Availability>>> = OnceLock::new();
    let key = configured.map(Path::to_path_buf);
    let cache = CACHE.get_or_init(Default::default);
    if let Ok(map) = cache.lock()
        && let Some(found) = map.get(&key)
    {
        return found.clone();
    }
    let found = check(configured);
    if let Ok(mut map) = cache.lock() {
        map.insert(key, found.clone());
    }
    found
}

fn check(configured: Option<&Path>) -> Availability {
    let path = match configured {
        Some(p) => p.to_path_buf(),
        None => match find_on_path("bwrap") {
            Some(p) => p,
            None => return Availability::Missing("bubblewrap (bwrap) is not installed".into()),
        },
    };
    let out = std::process::Command::new(&path)
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
            "true",
        ])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Err(e) => Availability::Missing(format!("{} cannot run: {e}", path.display())),
        Ok(o) if o.status.success() => Availability::Ready(path),
        Ok(o) => Availability::Missing(format!(
            "{} cannot create a namespace sandbox ({}); user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)",
            path.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// bubblewrap's arguments for either profile: `hidden` masked, then
/// `workspace` bound writable and entered, and `read` bound read-only.
///
/// `as_root`: bubblewrap runs as root, so it needs no user namespace of its
/// own (one would map the command to host root: owner of `/etc/shadow`,
/// capabilities or not); the sandbox's init keeps only the capabilities to
/// drop to the unprivileged user, and does so before anything else.
pub fn args(hidden: &[PathBuf], workspace: &Path, read: &[PathBuf], as_root: bool) -> Vec<String> {
    let userns: &[&str] = if as_root {
        &[
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
        ]
    } else {
        &["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    };
    let common = [
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        // Both profiles get a network namespace of their own: `offline`
        // has only loopback, `workspace` also the relay to the egress proxy.
        "--unshare-net",
        "--hostname",
        "cairn-sandbox",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ];
    let mut a: Vec<String> = userns
        .iter()
        .chain(&common)
        .map(std::string::ToString::to_string)
        .collect();
    let mut masked: Vec<PathBuf> = Vec::new();
    for dir in MASKED_DIRS {
        let p = Path::new(dir);
        // A symlink (/var/run -> /run) is covered by its target's mask.
        if p.is_dir() && !p.is_symlink() {
            if SHARED_TMP.contains(dir) {
                a.extend(["--perms".into(), "1777".into()]);
            }
            push_pair(&mut a, "--tmpfs", p);
            masked.push(p.to_path_buf());
        }
    }
    keep_resolver(&mut a);
    for h in hidden {
        if masked.iter().any(|m| h.starts_with(m)) {
            // Already invisible under an emptied directory.
            continue;
        }
        if h.is_dir() {
            push_pair(&mut a, "--tmpfs", h);
            masked.push(h.clone());
        } else if h.exists() {
            a.push("--ro-bind".into());
            a.push("/dev/null".into());
            a.push(h.display().to_string());
        }
    }
    mount_points(&mut a, &masked, workspace);
    push_pair(&mut a, "--bind", workspace);
    a.push(workspace.display().to_string());
    push_pair(&mut a, "--chdir", workspace);
    for p in read {
        mount_points(&mut a, &masked, p);
        push_pair(&mut a, "--ro-bind", p);
        a.push(p.display().to_string());
    }
    a
}

/// The directories between an emptied mask and a path bound inside it are
/// made by bubblewrap, as private as their host twins (0700 for a
/// temporary directory): made traversable, or an unprivileged command could
/// not reach its own workspace, or an MCP server its install, by its path.
fn mount_points(a: &mut Vec<String>, masked: &[PathBuf], bound: &Path) {
    let Some(mask) = masked
        .iter()
        .filter(|m| bound.starts_with(m) && bound != m.as_path())
        .max_by_key(|m| m.components().count())
    else {
        return;
    };
    let mut between: Vec<&Path> = bound
        .ancestors()
        .skip(1)
        .take_while(|p| p != mask)
        .collect();
    between.reverse();
    for dir in between {
        a.extend(["--perms".into(), "0755".into()]);
        push_pair(a, "--dir", dir);
    }
}

fn push_pair(a: &mut Vec<String>, flag: &str, p: &Path) {
    a.push(flag.into());
    a.push(p.display().to_string());
}

/// `/etc/resolv.conf` is often a link into `/run`, which is emptied: bind
/// its target back so name resolution keeps working with network on.
fn keep_resolver(a: &mut Vec<String>) {
    let conf = Path::new("/etc/resolv.conf");
    if conf.is_symlink()
        && let Ok(target) = conf.canonicalize()
        && target.starts_with("/run")
    {
        a.push("--ro-bind".into());
        a.push(target.display().to_string());
        a.push(target.display().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sandbox_has_its_own_network_and_no_capabilities() {
        for as_root in [false, true] {
            let a = args(&[PathBuf::from("/")], Path::new("/srv/ws"), &[], as_root);
            assert!(a.iter().any(|x| x == "--unshare-net"));
            assert!(a.windows(2).any(|w| w[0] == "--cap-drop" && w[1] == "ALL"));
            let bind = a.iter().rposition(|x| x == "--bind").unwrap();
            assert_eq!(a[bind + 1], "/srv/ws");
        }
    }

    #[test]
    fn directories_between_a_mask_and_the_workspace_are_traversable() {
        let mut a = Vec::new();
        let masked = [PathBuf::from("/tmp"), PathBuf::from("/tmp/home")];
        mount_points(&mut a, &masked, Path::new("/tmp/home/workspaces/default"));
        assert_eq!(a, ["--perms", "0755", "--dir", "/tmp/home/workspaces"]);
        let mut a = Vec::new();
        mount_points(&mut a, &masked, Path::new("/srv/ws"));
        assert!(a.is_empty());
    }
}
