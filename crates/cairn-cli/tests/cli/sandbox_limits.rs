//! Limits hold for a command as a whole, not per process or per file:
//! memory summed over all its processes, and everything it writes.

use serde_json::json;

use cairn_testkit::FakeLlm;

use crate::*;

#[test]
fn four_processes_of_one_command_share_its_memory_limit() {
    let h = home();
    h.write_config("[tools.sandbox]\nmemory_mb = 256\n");
    let fake = FakeLlm::start();
    // Each process stays under the limit (as RLIMIT_AS alone allowed);
    // together they hold 600 MiB.
    let hog = "for i in 1 2 3 4; do python3 -c \"import time; b = b'x' * (150 * 2**20); time.sleep(3); print('held')\" & done; wait";
    let results = call_tools(
        h.anthropic(&fake),
        &fake,
        &[("exec", json!({"command": hog, "timeout_s": 60}))],
    );
    let r = &results[0];
    assert!(
        r.contains("used more than 256 MiB of memory"),
        "{r}\n(doctor: {})",
        stdout(&run(h.cmd(), &["doctor"]))
    );
    assert!(r.matches("held").count() < 4, "{r}");
}

#[test]
fn a_command_cannot_write_past_its_disk_budget_across_files() {
    let h = home();
    h.write_config("[tools.sandbox]\ndisk_mb = 64\n");
    let fake = FakeLlm::start();
    let writer = "for i in 1 2 3; do head -c 300M /dev/zero > f$i; done; echo finished";
    let results = call_tools(
        h.anthropic(&fake),
        &fake,
        &[("exec", json!({"command": writer, "timeout_s": 60}))],
    );
    let r = &results[0];
    assert!(r.contains("wrote more than 64 MiB to disk"), "{r}");
    assert!(!r.contains("finished"), "{r}");
    let written: u64 = ["f1", "f2", "f3"]
        .iter()
        .filter_map(|f| std::fs::metadata(h.workspace().join(f)).ok())
        .map(|m| m.len())
        .sum();
    assert!(written < 600 << 20, "{written} bytes written");
}
