//! What the model reads of an MCP result: text as it is, binary content
//! named but not inlined (base64 images would fill the context with noise),
//! everything capped like any tool's output.

use serde_json::Value;

use crate::CappedOutput;

/// Appends the content blocks of a result (`content`, or a prompt's
/// messages' `content`) to `out`.
pub(crate) fn content(blocks: &[Value], out: &mut CappedOutput) {
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            out.push(b"\n");
        }
        block_text(block, out);
    }
}

fn block_text(block: &Value, out: &mut CappedOutput) {
    let s = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or("");
    match s("type") {
        "text" => out.push(s("text").as_bytes()),
        "image" | "audio" => out.push(
            format!(
                "[{} {}, {} bytes of base64 not shown]",
                s("type"),
                s("mimeType"),
                s("data").len()
            )
            .as_bytes(),
        ),
        "resource" => match block.get("resource") {
            Some(r) => resource(r, out),
            None => out.push(b"[resource]"),
        },
        "resource_link" => out.push(
            format!(
                "[resource link {} {}] {}",
                s("name"),
                s("uri"),
                s("description")
            )
            .as_bytes(),
        ),
        other => out.push(format!("[{other} content not shown]").as_bytes()),
    }
}

/// One resource's contents (text inline, blobs named).
pub(crate) fn resource(r: &Value, out: &mut CappedOutput) {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
    match r.get("text").and_then(Value::as_str) {
        Some(text) => {
            out.push(format!("[resource {}]\n", s("uri")).as_bytes());
            out.push(text.as_bytes());
        }
        None => out.push(
            format!(
                "[resource {} {}, {} bytes of base64 not shown]",
                s("uri"),
                s("mimeType"),
                s("blob").len()
            )
            .as_bytes(),
        ),
    }
}

/// A `tools/call` result as text: its content, or its structured content
/// when it has no content blocks.
pub(crate) fn call_result(result: &Value, limit: usize) -> String {
    let mut out = CappedOutput::new(limit);
    let blocks = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if blocks.is_empty() {
        if let Some(structured) = result.get("structuredContent") {
            out.push(structured.to_string().as_bytes());
        }
    } else {
        content(blocks, &mut out);
    }
    out.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_kept_binary_is_named_and_size_is_capped() {
        let r = json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "mimeType": "image/png", "data": "AAAA"},
            {"type": "resource", "resource": {"uri": "file:///a", "text": "inside"}}
        ]});
        let text = call_result(&r, 1000);
        assert!(
            text.starts_with("hello\n[image image/png, 4 bytes"),
            "{text}"
        );
        assert!(text.ends_with("[resource file:///a]\ninside"), "{text}");
        let big = json!({"content": [{"type": "text", "text": "x".repeat(100_000)}]});
        let text = call_result(&big, 1000);
        assert!(text.len() < 1100 && text.contains("bytes omitted of 100000"));
        let structured = json!({"content": [], "structuredContent": {"t": 1}});
        assert_eq!(call_result(&structured, 100), "{\"t\":1}");
    }
}
