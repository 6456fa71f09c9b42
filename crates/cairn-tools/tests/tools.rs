//! Built-in tools through their public interface.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cairn_tools::{ToolContext, ToolRegistry, Workspace};
use serde_json::{Value, json};

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: ToolContext,
    reg: ToolRegistry,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(&dir.path().join("ws")).unwrap();
    Fixture {
        ctx: ToolContext::new(ws),
        reg: ToolRegistry::builtin(&["*".to_string()]).unwrap(),
        _dir: dir,
    }
}

impl Fixture {
    async fn call(&self, name: &str, input: Value) -> cairn_core::ToolOutput {
        self.reg.get(name).unwrap().call(&self.ctx, input).await
    }
}

#[tokio::test]
async fn file_tools_work_inside_the_workspace() {
    let f = fixture();
    let w = f
        .call(
            "write_file",
            json!({"path": "dir/notes.txt", "content": "hello world"}),
        )
        .await;
    assert!(!w.is_error, "{}", w.content);
    assert_eq!(
        std::fs::read_to_string(f.ctx.workspace.root().join("dir/notes.txt")).unwrap(),
        "hello world"
    );
    assert_eq!(
        f.call("read_file", json!({"path": "dir/notes.txt"}))
            .await
            .content,
        "hello world"
    );
    let e = f
        .call(
            "edit_file",
            json!({"path": "dir/notes.txt", "old": "world", "new": "there"}),
        )
        .await;
    assert!(!e.is_error, "{}", e.content);
    assert_eq!(
        f.call("read_file", json!({"path": "dir/notes.txt"}))
            .await
            .content,
        "hello there"
    );
    let twice = f
        .call(
            "edit_file",
            json!({"path": "dir/notes.txt", "old": "", "new": "x"}),
        )
        .await;
    assert!(twice.is_error);
    let missing = f
        .call(
            "edit_file",
            json!({"path": "dir/notes.txt", "old": "nope", "new": "x"}),
        )
        .await;
    assert!(missing.is_error && missing.content.contains("not found"));
    let l = f.call("list_dir", json!({})).await;
    assert_eq!(l.content, "dir/");
    let l = f.call("list_dir", json!({"path": "dir"})).await;
    assert_eq!(l.content, "notes.txt\t11 bytes");
}

#[tokio::test]
async fn read_file_of_a_large_file_keeps_head_and_tail() {
    let f = fixture();
    let mut content = String::from("FIRST-LINE\n");
    content.push_str(&"x".repeat(5 * 1024 * 1024));
    content.push_str("\nLAST-LINE");
    std::fs::write(f.ctx.workspace.root().join("big.txt"), &content).unwrap();
    let r = f.call("read_file", json!({"path": "big.txt"})).await;
    assert!(!r.is_error);
    assert!(r.content.starts_with("FIRST-LINE"));
    assert!(r.content.ends_with("LAST-LINE"));
    assert!(r.content.len() < 40 * 1024);
    assert!(
        r.content
            .contains(&format!("bytes omitted of {}", content.len())),
        "{}",
        &r.content[16000..16500.min(r.content.len())]
    );
}

#[tokio::test]
async fn escapes_are_refused_by_every_file_tool() {
    let f = fixture();
    std::os::unix::fs::symlink("/etc", f.ctx.workspace.root().join("out")).unwrap();
    for path in ["../x", "/etc/passwd", "out/passwd", "a/../../x"] {
        for (tool, extra) in [
            ("read_file", json!({})),
            ("write_file", json!({"content": "x"})),
            ("edit_file", json!({"old": "a", "new": "b"})),
            ("list_dir", json!({})),
        ] {
            let mut input = extra.clone();
            input["path"] = json!(path);
            let r = f.call(tool, input).await;
            assert!(r.is_error, "{tool} {path}: {}", r.content);
            assert!(
                r.content.contains("refused") || r.content.contains("not a workspace path"),
                "{tool} {path}: {}",
                r.content
            );
        }
    }
    assert!(!std::path::Path::new("/etc/x").exists());
}

#[tokio::test]
async fn exec_runs_in_the_workspace_and_reports_exit_codes() {
    let f = fixture();
    let r = f
        .call("exec", json!({"command": "pwd; echo out; echo err >&2"}))
        .await;
    assert!(!r.is_error);
    assert!(r.content.starts_with("exit code: 0"));
    assert!(r.content.contains(f.ctx.workspace.root().to_str().unwrap()));
    assert!(r.content.contains("out") && r.content.contains("err"));
    let r = f.call("exec", json!({"command": "exit 3"})).await;
    assert!(
        r.is_error && r.content.starts_with("exit code: 3"),
        "{}",
        r.content
    );
    assert!(f.call("exec", json!({})).await.is_error);
}

#[tokio::test]
async fn exec_caps_fifty_megabytes_of_output() {
    let f = fixture();
    let r = f
        .call(
            "exec",
            json!({"command": "head -c 52428800 /dev/zero | tr '\\0' 'a'; echo; echo THE-END"}),
        )
        .await;
    assert!(r.content.len() < 40 * 1024, "{} bytes", r.content.len());
    assert!(
        r.content.contains("bytes omitted of 52428809"),
        "{}",
        &r.content[..200.min(r.content.len())]
    );
    assert!(r.content.trim_end().ends_with("THE-END"));
}

#[tokio::test]
async fn exec_timeout_kills_the_command_and_its_children() {
    let f = fixture();
    let started = Instant::now();
    // The background child is found by its command line: inside the
    // sandbox's PID namespace its pid means nothing on the host.
    let r = f
        .call(
            "exec",
            json!({"command": "sleep 300.75 & setsid sleep 300.5 & sleep 300", "timeout_s": 1}),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        r.is_error && r.content.contains("timed out after 1 s"),
        "{}",
        r.content
    );
    // Give the kernel a moment to reap.
    let mut survivors = Vec::new();
    for _ in 0..50 {
        survivors = processes_with("sleep 300.");
        if survivors.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(survivors.is_empty(), "survived the timeout: {survivors:?}");
}

/// Live (not zombie) processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        if text.contains(needle) && !stat.contains(") Z ") {
            found.push(text);
        }
    }
    found
}

#[tokio::test]
async fn cancellation_stops_exec() {
    let f = fixture();
    let cancel = f.ctx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let r = f.call("exec", json!({"command": "sleep 60"})).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(r.is_error && r.content.contains("cancelled"));
}

#[tokio::test]
async fn http_fetch_rejects_bad_urls() {
    let f = fixture();
    assert!(
        f.call("http_fetch", json!({"url": "file:///etc/passwd"}))
            .await
            .content
            .contains("unsupported scheme")
    );
    assert!(
        f.call("http_fetch", json!({"url": "not a url"}))
            .await
            .is_error
    );
}

#[tokio::test]
async fn a_fifo_or_device_is_refused_without_blocking() {
    let f = fixture();
    let root = f.ctx.workspace.root().to_path_buf();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(root.join("pipe"))
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        f.call("read_file", json!({"path": "pipe"})),
    )
    .await
    .expect("read_file on a FIFO hung");
    assert!(
        r.is_error && r.content.contains("not a regular file"),
        "{}",
        r.content
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let e = f
        .call("edit_file", json!({"path": "pipe", "old": "a", "new": "b"}))
        .await;
    assert!(
        e.is_error && e.content.contains("not a regular file"),
        "{}",
        e.content
    );
    std::os::unix::fs::symlink("/dev/zero", root.join("zero")).unwrap();
    let z = f.call("read_file", json!({"path": "zero"})).await;
    assert!(z.is_error && z.content.contains("symlink"), "{}", z.content);
    let l = f.call("list_dir", json!({})).await;
    assert!(
        l.content.contains("pipe\t(not a regular file)"),
        "{}",
        l.content
    );
    assert!(l.content.contains("zero@"), "{}", l.content);
}

#[tokio::test]
async fn swapping_a_directory_for_a_symlink_never_leaks_outside_files() {
    let f = fixture();
    let root = f.ctx.workspace.root().to_path_buf();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "OUTSIDE-SECRET").unwrap();
    std::fs::create_dir(root.join("real")).unwrap();
    std::fs::write(root.join("real/secret.txt"), "inside").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (root, target, stop) = (root.clone(), outside.path().to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            // `dir` flips between a directory inside and a link outside.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(root.join("dir"));
                let _ = std::os::unix::fs::symlink("real", root.join("dir"));
                let _ = std::fs::remove_file(root.join("dir"));
                let _ = std::os::unix::fs::symlink(&target, root.join("dir"));
            }
        })
    };
    let mut leaked = 0;
    for i in 0..400 {
        let r = f.call("read_file", json!({"path": "dir/secret.txt"})).await;
        let w = f
            .call(
                "write_file",
                json!({"path": "dir/planted.txt", "content": format!("{i}")}),
            )
            .await;
        if r.content.contains("OUTSIDE-SECRET") {
            leaked += 1;
        }
        let _ = w;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(leaked, 0, "read an outside file through a swapped link");
    assert!(
        !outside.path().join("planted.txt").exists(),
        "wrote through a swapped link"
    );
    // A planted link at the final name is replaced, not followed.
    std::fs::write(outside.path().join("target.txt"), "untouched").unwrap();
    std::os::unix::fs::symlink(outside.path().join("target.txt"), root.join("final.txt")).unwrap();
    let w = f
        .call("write_file", json!({"path": "final.txt", "content": "new"}))
        .await;
    assert!(!w.is_error, "{}", w.content);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("target.txt")).unwrap(),
        "untouched"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("final.txt")).unwrap(),
        "new"
    );
}
