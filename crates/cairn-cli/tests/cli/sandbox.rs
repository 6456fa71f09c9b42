//! `exec` under the sandbox, through the binary: what a prompt-injected
//! command tries, each failing cleanly with nothing changed on the host and
//! no process left behind.

use std::path::Path;
use std::process::Command;

use cairn_testkit::{CairnHome, FakeLlm, Reply};
use serde_json::{Value, json};

use crate::*;

const PLANTED: &str = "sk-ant-PLANTED-7f3a9c";

/// A home outside /tmp, so hiding it is the sandbox's doing and not a
/// side effect of the private /tmp.
fn home_outside_tmp() -> CairnHome {
    CairnHome::new_in(env!("CARGO_BIN_EXE_cairn"), Path::new("/srv/cairn-tests"))
}

/// Runs one turn whose model calls `exec` with each command in turn and
/// returns each call's result as the model saw it.
pub fn exec_all(h: &CairnHome, fake: &FakeLlm, calls: &[(&str, u64)]) -> Vec<String> {
    let calls: Vec<(&str, Value)> = calls
        .iter()
        .map(|(c, t)| ("exec", json!({"command": c, "timeout_s": t})))
        .collect();
    let mut cmd = h.anthropic(fake);
    cmd.env("ANTHROPIC_API_KEY", PLANTED);
    call_tools(cmd, fake, &calls)
}

fn processes_matching(marker: &str) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(marker) && !l.contains("ps -eo"))
        .map(str::to_string)
        .collect()
}

fn write_config(h: &CairnHome, text: &str) {
    h.write_config(text);
}

#[test]
fn a_hostile_command_cannot_reach_secrets_or_the_host() {
    let h = home_outside_tmp();
    let home = h.path().display().to_string();
    write_config(&h, "[llm]\nmodel = \"claude-sonnet-4-5\"\n");
    let fake = FakeLlm::start();
    // A first run creates the database, so there is one to steal.
    fake.push([Reply::text("hi")]);
    ok(h.anthropic(&fake), &["run", "hello"]);
    let outside = h.path().join("outside.txt");
    let results = exec_all(
        &h,
        &fake,
        &[
            ("env; echo \"key=$ANTHROPIC_API_KEY\"", 10),
            (
                "tr '\\0' '\\n' < /proc/$PPID/environ; cat /proc/*/environ | tr '\\0' '\\n'; echo ppid=$PPID",
                10,
            ),
            (
                &format!(
                    "cat {home}/cairn.toml; ls -la {home}; cat {home}/cairn.db | head -c 100000"
                ),
                10,
            ),
            (
                &format!(
                    "echo x > {}; echo x > /etc/cairn-pwned; echo x > /root/cairn-pwned; echo x > $HOME/inside.txt",
                    outside.display()
                ),
                10,
            ),
            ("ls /home /root; id -u", 10),
        ],
    );
    for r in &results {
        assert!(!r.contains(PLANTED), "the key leaked: {r}");
        assert!(!r.contains("sk-ant-"), "{r}");
    }
    assert!(
        results[0].contains("key=\n") || results[0].contains("key="),
        "{}",
        results[0]
    );
    assert!(results[0].contains("HOME="), "{}", results[0]);
    assert!(!results[0].contains("CAIRN_HOME"), "{}", results[0]);
    // The command's parent is the sandbox's init, not the server.
    assert!(results[1].contains("ppid=1\n"), "{}", results[1]);
    assert!(
        !results[2].contains("claude-sonnet-4-5"),
        "config read: {}",
        results[2]
    );
    assert!(
        !results[2].contains("SQLite format"),
        "database read: {}",
        results[2]
    );
    assert!(!outside.exists(), "wrote outside the workspace");
    assert!(!Path::new("/etc/cairn-pwned").exists());
    assert!(!Path::new("/root/cairn-pwned").exists());
    assert!(
        results[3].contains("Read-only file system") || results[3].contains("No such file"),
        "{}",
        results[3]
    );
    assert_eq!(
        std::fs::read_to_string(h.workspace().join("inside.txt"))
            .unwrap_or_else(|e| panic!("{e}: {}", results[3])),
        "x\n"
    );
}

#[test]
fn runaway_commands_are_stopped_and_leave_nothing_behind() {
    let h = home();
    let fake = FakeLlm::start();
    let results = exec_all(
        &h,
        &fake,
        &[
            // A fork bomb, marked so its processes can be looked for.
            (
                "bomb() { bomb | bomb & }; bomb; sleep 3 # cairn-bomb-marker",
                4,
            ),
            (
                "python3 -c 'b = bytearray(10 * 1024**3); print(len(b))'",
                30,
            ),
            ("head -c 1073741824 /dev/zero", 60),
            ("setsid sleep 1000.25 & echo started", 10),
            ("setsid sleep 1000.5 & sleep 60", 2),
            ("head -c 2147483648 /dev/zero > big.bin", 60),
        ],
    );
    assert!(
        results[0].contains("timed out") || results[0].contains("exit code"),
        "{}",
        results[0]
    );
    assert!(
        processes_matching("cairn-bomb-marker").is_empty(),
        "fork bomb survived"
    );
    assert!(results[1].contains("MemoryError"), "{}", results[1]);
    assert!(
        results[2].contains("printed more than 64 MiB"),
        "{}",
        results[2]
    );
    assert!(results[3].contains("started"), "{}", results[3]);
    assert!(results[4].contains("timed out after 2 s"), "{}", results[4]);
    for marker in ["sleep 1000.25", "sleep 1000.5"] {
        assert!(
            processes_matching(marker).is_empty(),
            "{marker} outlived its call"
        );
    }
    assert!(
        results[5].to_lowercase().contains("file size limit"),
        "{}",
        results[5]
    );
    let big = std::fs::metadata(h.workspace().join("big.bin"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(big <= 1 << 30, "wrote {big} bytes");
}

#[test]
fn offline_commands_cannot_connect_even_to_loopback() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let connect = format!(
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 3); print('connected')\""
    );
    let h = home();
    write_config(&h, "[agents.default]\nsandbox = \"offline\"\n");
    let fake = FakeLlm::start();
    let results = exec_all(&h, &fake, &[(&connect, 10)]);
    assert!(!results[0].contains("connected\n"), "{}", results[0]);
    assert!(results[0].contains("Error"), "{}", results[0]);
    assert!(listener.accept().is_err(), "a connection reached the host");

    // The same command on the host does connect: the test can fail.
    let h = home();
    write_config(&h, "[agents.default]\nsandbox = \"host\"\n");
    let fake = FakeLlm::start();
    let results = exec_all(&h, &fake, &[(&connect, 10)]);
    assert!(results[0].contains("connected"), "{}", results[0]);
}

#[test]
fn a_missing_sandbox_refuses_instead_of_running_unconfined() {
    let h = home();
    write_config(&h, "[tools.sandbox]\nbwrap = \"/nonexistent/bwrap\"\n");
    let fake = FakeLlm::start();
    let results = exec_all(&h, &fake, &[("echo ran > ran.txt", 10)]);
    assert!(results[0].contains("not available"), "{}", results[0]);
    assert!(
        results[0].contains("apt-get install bubblewrap"),
        "{}",
        results[0]
    );
    assert!(!h.workspace().join("ran.txt").exists());
    let out = run(h.cmd(), &["doctor"]);
    assert!(stdout(&out).contains("sandbox"), "{}", describe(&out));
    assert!(stdout(&out).contains("bubblewrap"), "{}", describe(&out));

    // Opting out is explicit, per agent, and said at start.
    let h = home();
    write_config(
        &h,
        "[agents.default]\nsandbox = \"host\"\nenv = { PROJECT = \"atlas\" }\n",
    );
    let fake = FakeLlm::start();
    let results = exec_all(
        &h,
        &fake,
        &[("echo project=$PROJECT; echo ran > ran.txt", 10)],
    );
    assert!(results[0].contains("project=atlas"), "{}", results[0]);
    assert!(h.workspace().join("ran.txt").exists());
    let server = cairn_testkit::ServerProcess::start(h.anthropic(&fake));
    assert!(
        server.log().contains("sandbox = \"host\""),
        "{}",
        server.log()
    );
}

#[test]
fn a_networked_sandbox_stays_off_the_hosts_abstract_sockets() {
    use std::os::linux::net::SocketAddrExt;
    // A host daemon listening on an abstract Unix socket (as D-Bus and X11
    // do): reachable from the host's network namespace, which the
    // `workspace` profile shared before it had its own.
    let name = format!("cairn-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let connect = format!(
        "python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('\\0{name}'); print('connected')\""
    );
    let h = home();
    let fake = FakeLlm::start();
    let results = exec_all(&h, &fake, &[(&connect, 10)]);
    // Abstract sockets belong to a network namespace, and the sandbox has
    // its own; Landlock's scoping would refuse it too (PermissionError).
    assert!(!results[0].contains("connected\n"), "{}", results[0]);
    assert!(
        results[0].contains("ConnectionRefusedError") || results[0].contains("PermissionError"),
        "{}",
        results[0]
    );
    assert!(
        listener.accept().is_err(),
        "the sandbox reached the host's socket"
    );
    let out = run(h.cmd(), &["doctor"]);
    assert!(
        stdout(&out).contains("[ok  ] landlock: enforced inside sandboxes"),
        "{}",
        describe(&out)
    );
    // Without Landlock (an agent on the host) the same socket is reachable:
    // the test can tell the difference.
    let h = home();
    write_config(&h, "[agents.default]\nsandbox = \"host\"\n");
    let fake = FakeLlm::start();
    let results = exec_all(&h, &fake, &[(&connect, 10)]);
    assert!(results[0].contains("connected"), "{}", results[0]);
}

#[test]
fn commands_never_run_as_root_nor_read_roots_files() {
    let me = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let marker = format!("root-only-{}", std::process::id());
    let secret = Path::new("/srv/cairn-tests").join(&marker);
    std::fs::create_dir_all("/srv/cairn-tests").unwrap();
    let content = format!("TOP-SECRET-{}", std::process::id());
    std::fs::write(&secret, &content).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let read = format!("id -u; cat /etc/shadow {}; echo end", secret.display());
    for profile in ["workspace", "offline"] {
        let h = home();
        write_config(&h, &format!("[agents.default]\nsandbox = \"{profile}\"\n"));
        let fake = FakeLlm::start();
        let results = call_tools(
            h.anthropic(&fake),
            &fake,
            &[
                ("exec", json!({"command": read, "timeout_s": 10})),
                (
                    "write_file",
                    json!({"path": "notes/a.txt", "content": "from the tool\n"}),
                ),
                (
                    "exec",
                    json!({"command": "echo from the command >> notes/a.txt && cat notes/a.txt && touch notes/b", "timeout_s": 10}),
                ),
            ],
        );
        let r = &results[0];
        let uid = r.lines().next().unwrap_or_default().trim().to_string();
        if me.trim() == "0" {
            // A root server: the command is someone else, and root's
            // private files are closed to it.
            assert_ne!(uid, "0", "{profile}: {r}");
            assert!(!r.contains(&content), "{profile}: {r}");
            assert!(!r.contains("root:"), "{profile}: {r}");
            assert_eq!(r.matches("Permission denied").count(), 2, "{profile}: {r}");
        } else {
            // Not root: commands run as the server's own user.
            assert_eq!(uid, me.trim(), "{profile}: {r}");
        }
        // What the file tools write, the command can change, and the
        // other way round.
        assert!(
            results[2].contains("from the tool\nfrom the command"),
            "{}",
            results[2]
        );
        assert!(h.workspace().join("notes/b").exists());
    }
    std::fs::remove_file(&secret).unwrap();
}
