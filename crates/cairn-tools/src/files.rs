//! File tools: read_file, write_file, edit_file, list_dir.

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use serde_json::json;

use std::path::PathBuf;

use crate::beneath::{self, BeneathError, EntryKind};
use crate::{Tool, ToolContext, str_arg};

fn path_schema(extra: serde_json::Value, required: &[&str]) -> serde_json::Value {
    let mut props =
        json!({"path": {"type": "string", "description": "Path relative to the workspace"}});
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// The `path` argument relative to the workspace, or the tool error.
fn relative(ctx: &ToolContext, input: &serde_json::Value) -> Result<PathBuf, ToolOutput> {
    let raw = str_arg(input, "path")?;
    ctx.workspace
        .relative(raw)
        .map_err(|e| ToolOutput::error(e.to_string()))
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BeneathError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("file operation failed: {e}")),
    }
}

/// Largest file `edit_file` rewrites.
const MAX_EDIT_BYTES: u64 = 16 << 20;

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
        let rel = tool_try!(relative(ctx, &input));
        let (root, limit) = (ctx.workspace.root().to_path_buf(), ctx.output_limit);
        match blocking(move || beneath::read_capped(&root, &rel, limit)).await {
            Ok(out) => ToolOutput::ok(out.render()),
            Err(e) => ToolOutput::error(e),
        }
    }
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
        let rel = tool_try!(relative(ctx, &input));
        let content = tool_try!(str_arg(&input, "content")).to_string();
        let (root, shown, n) = (
            ctx.workspace.root().to_path_buf(),
            rel.display().to_string(),
            content.len(),
        );
        match blocking(move || beneath::write_atomic(&root, &rel, content.as_bytes())).await {
            Ok(()) => ToolOutput::ok(format!("wrote {n} bytes to {shown}")),
            Err(e) => ToolOutput::error(e),
        }
    }
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
        let rel = tool_try!(relative(ctx, &input));
        let old = tool_try!(str_arg(&input, "old"));
        let new = tool_try!(str_arg(&input, "new"));
        if old.is_empty() {
            return ToolOutput::error("\"old\" must not be empty");
        }
        let shown = rel.display().to_string();
        let root = ctx.workspace.root().to_path_buf();
        let (r, p) = (root.clone(), rel.clone());
        let bytes = tool_try!(
            blocking(move || beneath::read_all(&r, &p, MAX_EDIT_BYTES))
                .await
                .map_err(ToolOutput::error)
        );
        let Ok(text) = String::from_utf8(bytes) else {
            return ToolOutput::error(format!("{shown}: not UTF-8 text"));
        };
        match text.matches(old).count() {
            0 => ToolOutput::error(format!("{shown}: \"old\" text not found")),
            1 => {
                let edited = text.replacen(old, new, 1);
                match blocking(move || beneath::write_atomic(&root, &rel, edited.as_bytes())).await
                {
                    Ok(()) => ToolOutput::ok(format!("edited {shown}")),
                    Err(e) => ToolOutput::error(e),
                }
            }
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
        if input.get("path").is_none_or(serde_json::Value::is_null) {
            input["path"] = json!(".");
        }
        let rel = tool_try!(relative(ctx, &input));
        let root = ctx.workspace.root().to_path_buf();
        let found = tool_try!(
            blocking(move || beneath::list(&root, &rel))
                .await
                .map_err(ToolOutput::error)
        );
        let mut entries: Vec<String> = found
            .into_iter()
            .map(|e| match e.kind {
                EntryKind::Dir => format!("{}/", e.name),
                EntryKind::File(n) => format!("{}\t{n} bytes", e.name),
                EntryKind::Symlink => format!("{}@\t(symlink, not followed)", e.name),
                EntryKind::Other => format!("{}\t(not a regular file)", e.name),
            })
            .collect();
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
