//! File tools: read_file, write_file, edit_file, list_dir.

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use serde_json::json;

use crate::{CappedOutput, Tool, ToolContext, str_arg};

fn path_schema(extra: serde_json::Value, required: &[&str]) -> serde_json::Value {
    let mut props =
        json!({"path": {"type": "string", "description": "Path relative to the workspace"}});
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// Resolves the `path` argument or returns the tool error to give back.
fn resolve(ctx: &ToolContext, input: &serde_json::Value) -> Result<std::path::PathBuf, ToolOutput> {
    let raw = str_arg(input, "path")?;
    ctx.workspace.resolve(raw).map_err(ToolOutput::error)
}

/// `read_file`.
pub struct ReadFile;

#[async_trait]
impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description:
                "Read a text file from the workspace. Long files are shortened in the middle."
                    .into(),
            input_schema: path_schema(json!({}), &["path"]),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let path = tool_try!(resolve(ctx, &input));
        // In place with std::fs: reading at most the kept head and tail is
        // quicker than two thread hand-offs to the blocking pool.
        match read_capped(&path, ctx.output_limit) {
            Ok(out) => ToolOutput::ok(out.render()),
            Err(e) => ToolOutput::error(format!("{}: {e}", ctx.workspace.display(&path))),
        }
    }
}

/// Reads a file into a capped collector; of a large file only the head and
/// the tail that the cap keeps are read, never the whole file.
fn read_capped(path: &std::path::Path, limit: usize) -> std::io::Result<CappedOutput> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut out = CappedOutput::new(limit);
    if len <= limit as u64 {
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes)?;
        out.push(&bytes);
        return Ok(out);
    }
    let half = (limit / 2) as u64;
    let mut head = vec![0u8; half as usize];
    file.read_exact(&mut head)?;
    file.seek(SeekFrom::Start(len - half))?;
    let mut tail = Vec::with_capacity(half as usize);
    file.read_to_end(&mut tail)?;
    out.push(&head);
    out.skip(len - 2 * half);
    out.push(&tail);
    Ok(out)
}

/// `write_file`.
pub struct WriteFile;

#[async_trait]
impl Tool for WriteFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write_file".into(),
            description: "Create or replace a file in the workspace with the given content (parent directories are created).".into(),
            input_schema: path_schema(json!({"content": {"type": "string"}}), &["path", "content"]),
        }
    }

    fn idempotent(&self) -> bool {
        false
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let path = tool_try!(resolve(ctx, &input));
        let content = tool_try!(str_arg(&input, "content"));
        match write_atomic(&path, content.as_bytes()).await {
            Ok(()) => ToolOutput::ok(format!(
                "wrote {} bytes to {}",
                content.len(),
                ctx.workspace.display(&path)
            )),
            Err(e) => ToolOutput::error(format!("{}: {e}", ctx.workspace.display(&path))),
        }
    }
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written file.
async fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.cairn-tmp-{}", std::process::id()));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}

/// `edit_file`.
pub struct EditFile;

#[async_trait]
impl Tool for EditFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "edit_file".into(),
            description: "Replace one exact occurrence of `old` with `new` in a workspace file. Fails if `old` occurs zero or several times.".into(),
            input_schema: path_schema(json!({"old": {"type": "string"}, "new": {"type": "string"}}), &["path", "old", "new"]),
        }
    }

    fn idempotent(&self) -> bool {
        false
    }

    async fn call(&self, ctx: &ToolContext, input: serde_json::Value) -> ToolOutput {
        let path = tool_try!(resolve(ctx, &input));
        let old = tool_try!(str_arg(&input, "old"));
        let new = tool_try!(str_arg(&input, "new"));
        if old.is_empty() {
            return ToolOutput::error("\"old\" must not be empty");
        }
        let shown = ctx.workspace.display(&path);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) => return ToolOutput::error(format!("{shown}: {e}")),
        };
        match text.matches(old).count() {
            0 => ToolOutput::error(format!("{shown}: \"old\" text not found")),
            1 => match write_atomic(&path, text.replacen(old, new, 1).as_bytes()).await {
                Ok(()) => ToolOutput::ok(format!("edited {shown}")),
                Err(e) => ToolOutput::error(format!("{shown}: {e}")),
            },
            n => ToolOutput::error(format!(
                "{shown}: \"old\" occurs {n} times; include more context to make it unique"
            )),
        }
    }
}

/// `list_dir`.
pub struct ListDir;

const MAX_ENTRIES: usize = 1000;

#[async_trait]
impl Tool for ListDir {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "list_dir".into(),
            description: "List a workspace directory: one entry per line, directories end with /, files show their size.".into(),
            input_schema: path_schema(json!({}), &[]),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, mut input: serde_json::Value) -> ToolOutput {
        if input.get("path").is_none_or(|p| p.is_null()) {
            input["path"] = json!(".");
        }
        let path = tool_try!(resolve(ctx, &input));
        let shown = ctx.workspace.display(&path);
        let mut rd = match tokio::fs::read_dir(&path).await {
            Ok(rd) => rd,
            Err(e) => return ToolOutput::error(format!("{shown}: {e}")),
        };
        let mut entries = Vec::new();
        while let Ok(Some(e)) = rd.next_entry().await {
            let name = e.file_name().to_string_lossy().into_owned();
            let line = match e.metadata().await {
                Ok(m) if m.is_dir() => format!("{name}/"),
                Ok(m) => format!("{name}\t{} bytes", m.len()),
                Err(_) => name,
            };
            entries.push(line);
        }
        entries.sort();
        let total = entries.len();
        entries.truncate(MAX_ENTRIES);
        let mut out = entries.join("\n");
        if total > MAX_ENTRIES {
            out.push_str(&format!("\n[… {} more entries]", total - MAX_ENTRIES));
        }
        if total == 0 {
            out = "(empty directory)".into();
        }
        ToolOutput::ok(out)
    }
}
