//! Config and argument errors: clear messages, non-zero exits.

use crate::*;

#[test]
fn init_writes_a_config_that_loads() {
    let h = home();
    let out = ok(h.cmd(), &["init"]);
    assert!(
        stderr(&out).contains("ANTHROPIC_API_KEY"),
        "init says how to configure a provider"
    );
    assert!(h.path().join("cairn.toml").exists());
    assert!(h.workspace().exists());
    let again = ok(h.cmd(), &["init"]);
    assert!(stderr(&again).contains("already exists"));
    let status = json(&h, &["status"]);
    assert_eq!(status["schema_version"], 19);
    assert_eq!(status["sessions"], 0);
}

#[test]
fn a_bad_config_names_file_line_and_key() {
    let h = home();
    ok(h.cmd(), &["init"]);
    let path = h.path().join("cairn.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("max_attempts = 5", "max_attempts = \"five\"");
    std::fs::write(&path, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("max_attempts"))
        .unwrap()
        + 1;
    let out = run(h.cmd(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("cairn.toml:{line}:")), "{err}");
    assert!(err.contains("max_attempts"), "{err}");

    std::fs::write(&path, "[llm]\nmodle = \"x\"\n").unwrap();
    let err = stderr(&run(h.cmd(), &["status"]));
    assert!(
        err.contains("cairn.toml:2:") && err.contains("unknown field `modle`"),
        "{err}"
    );
}

#[test]
fn a_bad_environment_override_names_the_variable() {
    let h = home();
    let mut cmd = h.cmd();
    cmd.env("CAIRN_LLM__MAX_ATTEMPTS", "lots");
    let out = run(cmd, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("CAIRN_LLM__MAX_ATTEMPTS"),
        "{}",
        stderr(&out)
    );
    let mut cmd = h.cmd();
    cmd.env("CAIRN_LLM__MODEL", "my-model");
    assert_eq!(
        json_with(cmd, &["status"])["overrides"][0],
        "CAIRN_LLM__MODEL"
    );
}

fn json_with(cmd: std::process::Command, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_slice(&ok(cmd, &all).stdout).unwrap()
}

#[test]
fn bad_arguments_exit_non_zero_with_a_message() {
    let h = home();
    for (args, expect) in [
        (vec!["run"], "required"),
        (vec!["run", "--session", "../etc", "hi"], "invalid session"),
        (vec!["run", "--agent", "nobody", "hi"], "no agent named"),
        (vec!["runs", "show", "run_doesnotexist"], "not found"),
        (vec!["sessions", "show", "nope"], "not found"),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ] {
        let mut cmd = h.cmd();
        cmd.env("ANTHROPIC_API_KEY", "k");
        let out = run(cmd, &args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
}

#[test]
fn doctor_says_what_to_fix() {
    let h = home();
    let out = run(h.cmd(), &["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("[FAIL] model provider") && text.contains("ANTHROPIC_API_KEY"),
        "{text}"
    );
    assert!(text.contains("[ok  ] database"), "{text}");
    let mut cmd = h.cmd();
    cmd.env("ANTHROPIC_API_KEY", "k");
    let out = ok(cmd, &["doctor"]);
    assert!(stdout(&out).contains("all required checks passed"));
}

#[test]
fn a_config_holding_a_secret_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let h = home();
    let path = h.path().join("cairn.toml");
    std::fs::write(
        &path,
        "[channels.telegram]\ntoken = \"123:ABC\"\n[agents.default]\nmax_tokens = 100\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(h.cmd(), &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("channels.telegram.token"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(
        !err.contains("123:ABC"),
        "the error shows the secret: {err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(h.cmd(), &["status"]);
}
