//! `exec`: runs a shell command in the workspace under the agent's sandbox
//! profile, with a timeout (and cancel) that kills the command and
//! everything it started, output capped, and an allowlisted environment.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

use crate::sandbox::Limits;
use crate::{CappedOutput, Tool, ToolContext, str_arg};

const DEFAULT_TIMEOUT_S: u64 = 120;
const MAX_TIMEOUT_S: u64 = 3600;

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
        let Some(timeout) = exec_timeout(&input) else {
            return ToolOutput::error("timeout_s must be a number of seconds >= 1");
        };
        run(ctx, &command, timeout).await
    }
}

/// How long an `exec` call with this input may run before it is killed
/// (`None`: the input's `timeout_s` is invalid); the watchdog asks this too,
/// so the two never disagree.
pub fn exec_timeout(input: &serde_json::Value) -> Option<Duration> {
    let seconds = match input.get("timeout_s") {
        None | Some(serde_json::Value::Null) => DEFAULT_TIMEOUT_S,
        Some(v) => match v.as_f64() {
            Some(t) if t >= 1.0 => (t as u64).min(MAX_TIMEOUT_S),
            _ => return None,
        },
    };
    Some(Duration::from_secs(seconds))
}

/// How a command ended.
enum End {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
    TooMuchOutput,
    TooMuchWritten,
    /// The kernel killed one of its processes for the command's memory.
    OutOfMemory,
}

async fn run(ctx: &ToolContext, command: &str, timeout: Duration) -> ToolOutput {
    let mut confined = match ctx.sandbox.spawn(ctx.workspace.root(), command, timeout) {
        Ok(c) => c,
        Err(e) => return ToolOutput::error(e.to_string()),
    };
    let out = Arc::new(Mutex::new(CappedOutput::new(ctx.output_limit)));
    let flood = Arc::new(Notify::new());
    let limits = &ctx.sandbox.policy.limits;
    let max_output = limits.output_mb.saturating_mul(1 << 20) as usize;
    let disk_budget = limits.disk_mb.saturating_mul(1 << 20);
    let mut readers = Vec::new();
    let sink = Sink {
        out: out.clone(),
        max_output,
        flood: flood.clone(),
        progress: ctx.progress.clone(),
    };
    if let Some(stdout) = confined.child.stdout.take() {
        readers.push(tokio::spawn(drain(stdout, sink.clone())));
    }
    if let Some(stderr) = confined.child.stderr.take() {
        readers.push(tokio::spawn(drain(stderr, sink)));
    }
    let meter = confined.disk_meter();
    let end = tokio::select! {
        s = confined.child.wait() => End::Exited(s),
        _ = tokio::time::sleep(timeout) => End::TimedOut,
        _ = ctx.cancel.cancelled() => End::Cancelled,
        _ = flood.notified() => End::TooMuchOutput,
        _ = over_disk_budget(meter, disk_budget) => End::TooMuchWritten,
    };
    // A flood ends the reading, which kills the command by SIGPIPE: both
    // may be ready at once, and the flood is the cause. An OOM kill may
    // leave the command's own exit status clean (its shell went on).
    let end = match end {
        End::Exited(_) if sink_flooded(&out, max_output) => End::TooMuchOutput,
        End::Exited(Ok(_)) if confined.oom_killed() => End::OutOfMemory,
        other => other,
    };
    confined.kill_all();
    if let Err(e) = confined.child.wait().await {
        tracing::warn!(error = %e, "reaping a command failed");
    }
    for r in readers {
        // Pipes close once everything is dead; bound the wait anyway.
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    // Removing the cgroup may wait a moment for the killed tasks to leave:
    // not on an async worker.
    if let Err(e) = tokio::task::spawn_blocking(move || drop(confined)).await {
        tracing::warn!(error = %e, "cleaning up a command's sandbox failed");
    }
    let text = out.lock().map(|o| o.render()).unwrap_or_default();
    report(end, timeout, &ctx.sandbox.policy.limits, text)
}

/// Resolves when the command has written more than `budget` bytes; never
/// when there is no budget or no way to measure.
async fn over_disk_budget(meter: Option<crate::sandbox::DiskMeter>, budget: u64) {
    let Some(meter) = meter.filter(|_| budget > 0) else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if meter.written() > budget {
            return;
        }
    }
}

fn report(end: End, timeout: Duration, limits: &Limits, text: String) -> ToolOutput {
    match end {
        End::Exited(Ok(status)) => {
            let code = status.code().map_or_else(
                || {
                    use std::os::unix::process::ExitStatusExt;
                    match status.signal() {
                        Some(9) => "killed (SIGKILL: a resource limit or the sandbox)".to_string(),
                        Some(24) => "killed: CPU time limit reached".to_string(),
                        Some(25) => "killed: file size limit reached".to_string(),
                        Some(s) => format!("killed by signal {s}"),
                        None => "killed by a signal".to_string(),
                    }
                },
                |c| c.to_string(),
            );
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
        End::TooMuchOutput => ToolOutput::error(format!(
            "the command printed more than {} MiB and was killed\n{text}",
            limits.output_mb
        )),
        End::TooMuchWritten => ToolOutput::error(format!(
            "killed: the command wrote more than {} MiB to disk (tools.sandbox.disk_mb)\n{text}",
            limits.disk_mb
        )),
        End::OutOfMemory => ToolOutput::error(format!(
            "killed: the command's processes together used more than {} MiB of memory (tools.sandbox.memory_mb)\n{text}",
            limits.memory_mb
        )),
    }
}

/// Where a command's output goes: the capped copy for the result, the
/// flood alarm, and the live stream when someone watches.
#[derive(Clone)]
struct Sink {
    out: Arc<Mutex<CappedOutput>>,
    max_output: usize,
    flood: Arc<Notify>,
    progress: Option<crate::Progress>,
}

/// Whether the output passed the flood limit.
fn sink_flooded(out: &Mutex<CappedOutput>, max_output: usize) -> bool {
    max_output > 0 && out.lock().is_ok_and(|o| o.total() > max_output)
}

async fn drain(mut pipe: impl tokio::io::AsyncRead + Unpin, sink: Sink) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut text = crate::Utf8Chunks::default();
    let mut streaming = sink.progress.is_some();
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let total = match sink.out.lock() {
                    Ok(mut o) => {
                        o.push(&buf[..n]);
                        o.total()
                    }
                    Err(_) => break,
                };
                if sink.max_output > 0 && total > sink.max_output {
                    sink.flood.notify_one();
                    break;
                }
                if streaming && let Some(p) = &sink.progress {
                    streaming = p.send(&text.push(&buf[..n]));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_read_once_for_the_tool_and_the_watchdog() {
        let t = |v: serde_json::Value| exec_timeout(&v).map(|d| d.as_secs());
        assert_eq!(t(json!({})), Some(DEFAULT_TIMEOUT_S));
        assert_eq!(t(json!({"timeout_s": 2.5})), Some(2));
        assert_eq!(t(json!({"timeout_s": 100_000})), Some(MAX_TIMEOUT_S));
        assert_eq!(t(json!({"timeout_s": 0})), None);
        assert_eq!(t(json!({"timeout_s": "ten"})), None);
    }
}
