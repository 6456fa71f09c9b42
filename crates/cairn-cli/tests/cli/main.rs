//! The `cairn` binary end to end, against the fake LLM over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod audit;
mod batch;
mod browser_guard;
mod channel_sessions;
mod channels;
mod cluster;
mod cluster_batch;
mod cluster_cutoff;
mod cluster_faults;
mod cluster_jobs;
mod cluster_live;
mod cluster_mcp;
mod cluster_rogue;
mod compaction;
mod concurrency;
mod config_errors;
mod crash;
mod fetch_guard;
mod mcp_client;
mod mcp_http;
mod mcp_server;
mod memory;
mod migrate;
mod openai_compat;
mod operator;
mod people;
mod postgres;
mod provider_errors;
mod router;
mod router_edge;
mod sandbox;
mod sandbox_limits;
mod sandbox_net;
mod schedules;
mod secrets;
mod server_api;
mod server_crash;
mod supervision;
mod tls;
mod tool_runs;
mod users_apart;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cairn_testkit::{CairnHome, FakeLlm, describe};
use serde_json::Value;

pub fn home() -> CairnHome {
    CairnHome::new(env!("CARGO_BIN_EXE_cairn"))
}

/// Runs `cmd args` and returns its output.
/// Waits until `done` holds; fails the test after `within`.
pub fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < within,
            "timed out waiting for {what} ({within:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run(cmd: Command, args: &[&str]) -> Output {
    CairnHome::run(cmd, args)
}

/// Runs and asserts success.
pub fn ok(cmd: Command, args: &[&str]) -> Output {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "cairn {args:?} failed:\n{}",
        describe(&out)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `cairn <args> --json` parsed.
pub fn json(h: &CairnHome, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(h.cmd(), &all);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// `kill -9` of a child process, then reaps it.
pub fn kill9(child: &mut std::process::Child) {
    assert!(
        Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    child.wait().unwrap();
}

/// Waits until the fake has received `n` requests.
pub fn wait_for_requests(fake: &FakeLlm, n: usize) {
    let start = Instant::now();
    while fake.requests().len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "fake LLM got {} of {n} requests",
            fake.requests().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The journal kinds of a run, in order.
pub fn journal_kinds(h: &CairnHome, run_id: &str) -> Vec<String> {
    let detail = json(h, &["runs", "show", run_id]);
    detail["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Processes whose command line contains `marker`, as `pid: cmdline`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|p| {
            let cmd = std::fs::read(p.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(marker)
                .then(|| format!("{}: {cmd}", p.file_name().to_string_lossy()))
        })
        .collect()
}

/// Runs one turn (`cmd run`) whose model makes each tool call in turn and
/// returns each call's result as the model saw it.
pub fn call_tools(cmd: Command, fake: &FakeLlm, calls: &[(&str, Value)]) -> Vec<String> {
    let mut script: Vec<cairn_testkit::Reply> = calls
        .iter()
        .map(|(tool, args)| cairn_testkit::Reply::tool(tool, args.clone()))
        .collect();
    script.push(cairn_testkit::Reply::text("done"));
    fake.push(script);
    let before = fake.requests().len();
    let out = run(cmd, &["run", "--no-stream", "try things"]);
    assert!(out.status.success(), "{}", describe(&out));
    let reqs = fake.requests();
    (1..=calls.len())
        .map(|i| {
            reqs[before + i]
                .message_texts()
                .last()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}
