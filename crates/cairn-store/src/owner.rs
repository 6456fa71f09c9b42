//! Who holds a lease: `host/pid/start-time`. A lease held by a process of
//! this host that no longer exists (killed, crashed, host rebooted) is
//! released at once instead of after its expiry, so a restart resumes work
//! immediately. The start time tells a reused pid from the original.

use std::sync::OnceLock;

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Start time of a process in clock ticks since boot (field 22 of its stat).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields after it are plain.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19).map(str::to_string)
}

/// This process's lease-owner id.
pub fn this_process() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let pid = std::process::id();
        format!(
            "{}/{pid}/{}",
            hostname(),
            start_time(pid).unwrap_or_else(|| "0".into())
        )
    })
}

/// Whether `owner` names a process of this host that is gone.
pub fn is_dead_local(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, '/');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    start_time(pid).is_none_or(|s| s != start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_one_is_dead() {
        assert!(!is_dead_local(this_process()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_time(pid).unwrap_or_else(|| "1".into());
        child.wait().unwrap();
        assert!(is_dead_local(&format!("{}/{pid}/{start}", hostname())));
        assert!(!is_dead_local("other-host/1/1"));
        assert!(!is_dead_local("garbage"));
    }
}
