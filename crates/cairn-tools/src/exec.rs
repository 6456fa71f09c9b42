//! `exec`: runs a shell command in the workspace, in its own process group,
//! with a timeout that kills the whole group (children included), output
//! capped, and secrets removed from its environment.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::{CappedOutput, Tool, ToolContext, str_arg};

const DEFAULT_TIMEOUT_S: u64 = 120;
const MAX_TIMEOUT_S: u64 = 3600;

/// Environment variable names never passed to commands the model runs.
fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.starts_with("CAIRN_")
        || ["API_KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL"]
            .iter()
            .any(|s| n.contains(s))
}

/// The `exec` tool.
pub struct Exec;

#[async_trait]
impl Tool for Exec {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "exec".into(),
            description: "Run a shell command (sh -c) in the workspace directory. Returns the exit code and combined stdout/stderr (long output is shortened in the middle). The command and everything it starts are killed at the timeout.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "Shell command line"},
                    "timeout_s": {"type": "integer", "description": "Seconds before the command is killed (default 120, max 3600)", "minimum": 1}
                },
                "required": ["command"]
            }),
        }
    }

    fn idempotent(&self) -> bool {
        false
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let command = tool_try!(str_arg(&input, "command")).to_string();
        let timeout_s = match input.get("timeout_s") {
            None | Some(serde_json::Value::Null) => DEFAULT_TIMEOUT_S,
            Some(v) => match v.as_f64() {
                Some(t) if t >= 1.0 => (t as u64).min(MAX_TIMEOUT_S),
                _ => return ToolOutput::error("timeout_s must be a number of seconds >= 1"),
            },
        };
        run(ctx, &command, Duration::from_secs(timeout_s)).await
    }
}

async fn run(ctx: &ToolContext, command: &str, timeout: Duration) -> ToolOutput {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(ctx.workspace.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, _) in std::env::vars_os() {
        if let Some(name) = k.to_str().filter(|n| is_secret(n)) {
            cmd.env_remove(name);
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ToolOutput::error(format!("cannot start sh: {e}")),
    };
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    // Whatever happens below, nothing the command started outlives the call.
    let _group = GroupGuard(pgid);

    let out = Arc::new(Mutex::new(CappedOutput::new(ctx.output_limit)));
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(drain(stdout, out.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(drain(stderr, out.clone())));
    }

    enum End {
        Exited(std::io::Result<std::process::ExitStatus>),
        TimedOut,
        Cancelled,
    }
    let end = tokio::select! {
        s = child.wait() => End::Exited(s),
        _ = tokio::time::sleep(timeout) => End::TimedOut,
        _ = ctx.cancel.cancelled() => End::Cancelled,
    };
    kill_group(pgid);
    let _ = child.wait().await;
    for r in readers {
        // Pipes close once the group is dead; bound the wait anyway.
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    let text = out.lock().map(|o| o.render()).unwrap_or_default();
    match end {
        End::Exited(Ok(status)) => {
            let code = status
                .code()
                .map_or_else(|| "killed by a signal".to_string(), |c| c.to_string());
            let body = format!("exit code: {code}\n{text}");
            if status.success() {
                ToolOutput::ok(body)
            } else {
                ToolOutput::error(body)
            }
        }
        End::Exited(Err(e)) => {
            ToolOutput::error(format!("waiting for the command failed: {e}\n{text}"))
        }
        End::TimedOut => ToolOutput::error(format!(
            "timed out after {} s: the command and its children were killed\n{text}",
            timeout.as_secs()
        )),
        End::Cancelled => ToolOutput::error(format!(
            "cancelled: the command and its children were killed\n{text}"
        )),
    }
}

async fn drain(mut pipe: impl tokio::io::AsyncRead + Unpin, out: Arc<Mutex<CappedOutput>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Ok(mut o) = out.lock() {
                    o.push(&buf[..n]);
                }
            }
        }
    }
}

fn kill_group(pgid: Option<Pid>) {
    if let Some(pgid) = pgid {
        // ESRCH (already gone) is the normal case.
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        for s in [
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "DB_PASSWORD",
            "CAIRN_HOME",
            "aws_secret_access_key",
        ] {
            assert!(is_secret(s), "{s}");
        }
        for s in ["PATH", "HOME", "LANG"] {
            assert!(!is_secret(s), "{s}");
        }
    }
}
