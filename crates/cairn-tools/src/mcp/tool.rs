//! An MCP server's tools as cairn tools (`<server>__<tool>`), and the
//! server's resources and prompts as four more tools the agent can call.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{ToolOutput, ToolSpec};
use rmcp::ServiceError;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientRequest, ServerResult,
};
use rmcp::service::PeerRequestOptions;
use serde_json::{Value, json};

use super::conn::Conn;
use super::hub::{Offer, Slot};
use super::{progress, render};
use crate::{CappedOutput, Tool, ToolContext};

/// Longest tool description passed on: a server's descriptions go into the
/// model's context unread by anyone, so they are bounded.
const MAX_DESCRIPTION: usize = 2000;
/// Providers accept tool names up to 64 characters.
const MAX_NAME: usize = 64;

/// `<server>__<tool>`, with characters providers refuse replaced.
pub fn tool_name(server: &str, tool: &str) -> String {
    let clean: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{server}__{clean}");
    name.truncate(MAX_NAME);
    name
}

fn bounded(text: &str) -> String {
    if text.len() <= MAX_DESCRIPTION {
        return text.to_string();
    }
    let mut end = MAX_DESCRIPTION;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One tool of an MCP server.
pub(crate) struct McpTool {
    slot: Arc<Slot>,
    remote: String,
    spec: ToolSpec,
    idempotent: bool,
}

impl McpTool {
    /// The cairn tool for `tool` of the server behind `slot`.
    pub fn new(slot: Arc<Slot>, tool: rmcp::model::Tool) -> Self {
        let hints = tool.annotations.as_ref();
        // A read-only or idempotent tool may be re-run after a crash; the
        // hints are the server's word, and a wrong one only affects it.
        let idempotent = hints
            .is_some_and(|a| a.read_only_hint == Some(true) || a.idempotent_hint == Some(true));
        let description = tool
            .description
            .as_deref()
            .or(tool.title.as_deref())
            .unwrap_or("");
        let spec = ToolSpec {
            name: tool_name(&slot.name, &tool.name),
            description: bounded(&format!("[MCP server {}] {description}", slot.name)),
            input_schema: Value::Object((*tool.input_schema).clone()),
        };
        McpTool {
            remote: tool.name.to_string(),
            slot,
            spec,
            idempotent,
        }
    }
}

#[async_trait]
impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn place(&self) -> cairn_core::audit::Place {
        cairn_core::audit::Place::Mcp
    }

    async fn call(&self, ctx: &ToolContext, input: Value) -> ToolOutput {
        let arguments = match input {
            Value::Object(map) => map,
            Value::Null => Default::default(),
            _ => return ToolOutput::error("the arguments must be a JSON object"),
        };
        let conn = match self.slot.live().await {
            Ok(c) => c,
            Err(e) => return ToolOutput::error(e.to_string()),
        };
        let params = CallToolRequestParams::new(self.remote.clone()).with_arguments(arguments);
        self.slot_call(ctx, &conn, params).await
    }
}

impl McpTool {
    async fn slot_call(
        &self,
        ctx: &ToolContext,
        conn: &Arc<Conn>,
        params: CallToolRequestParams,
    ) -> ToolOutput {
        let timeout = self.slot.config.timeout();
        let server = &self.slot.name;
        let peer = conn.service.peer();
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = match peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
        {
            Ok(h) => h,
            Err(e) => return failed_call(&self.slot, conn, &e).await,
        };
        // rmcp picks the request's progress token; progress for it (also
        // what arrived already) goes to this call's watchers.
        let token = progress::token_key(&handle.progress_token);
        if let (Some(p), Ok(mut board)) = (&ctx.progress, conn.handler.progress.lock()) {
            board.watch(token.clone(), p.clone());
        }
        let id = handle.id.clone();
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout, handle.await_response()) => Some(r),
            _ = ctx.cancel.cancelled() => None,
        };
        if let Ok(mut board) = conn.handler.progress.lock() {
            board.forget(&token);
        }
        let result = match outcome {
            Some(r) => r,
            None => {
                let note =
                    CancelledNotificationParam::new(Some(id), Some("the run was cancelled".into()));
                if let Err(e) = peer.notify_cancelled(note).await {
                    tracing::debug!(server = %server, "cannot tell the server the call was cancelled: {e}");
                }
                return ToolOutput::error("cancelled");
            }
        };
        match result {
            Ok(Ok(ServerResult::CallToolResult(r))) => {
                let value = serde_json::to_value(&r).unwrap_or(Value::Null);
                let text = render::call_result(&value, ctx.output_limit);
                if r.is_error == Some(true) {
                    ToolOutput::error(text)
                } else {
                    ToolOutput::ok(text)
                }
            }
            Ok(Ok(_)) => ToolOutput::error(format!(
                "MCP server {server} answered {} with something other than a tool result",
                self.remote
            )),
            Ok(Err(e)) => failed_call(&self.slot, conn, &e).await,
            Err(_) => {
                let why = format!(
                    "MCP server {server} did not answer {} within {} s",
                    self.remote,
                    timeout.as_secs()
                );
                // A server that hangs on one call is likely to hang on the
                // next: start it afresh rather than queue calls behind it.
                self.slot.discard(conn, why.clone()).await;
                ToolOutput::error(why)
            }
        }
    }
}

/// The tool error for a failed request; when the connection is gone, it
/// is dropped so the next call reconnects.
async fn failed_call(slot: &Slot, conn: &Arc<Conn>, e: &ServiceError) -> ToolOutput {
    let out = failure(&slot.name, conn, e);
    if matches!(
        e,
        ServiceError::TransportClosed | ServiceError::TransportSend(_)
    ) {
        slot.discard(conn, out.content.clone()).await;
    }
    out
}

/// The tool error for a failed request.
fn failure(server: &str, conn: &Conn, e: &ServiceError) -> ToolOutput {
    match e {
        ServiceError::McpError(err) => ToolOutput::error(format!(
            "MCP server {server} refused the call: {} (code {})",
            err.message, err.code.0
        )),
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
            let said = conn.stderr_note();
            ToolOutput::error(format!(
                "MCP server {server} stopped during the call{said}. It is restarted on the next call; the call may or may not have taken effect"
            ))
        }
        other => ToolOutput::error(format!("MCP server {server}: {other}")),
    }
}

/// What a server's resources and prompts become.
#[derive(Clone, Copy)]
pub(crate) enum SideTool {
    ListResources,
    ReadResource,
    ListPrompts,
    GetPrompt,
}

impl SideTool {
    /// The side tools a server's offer calls for.
    pub fn offered(offer: &Offer) -> Vec<SideTool> {
        let mut out = Vec::new();
        if offer.resources {
            out.extend([SideTool::ListResources, SideTool::ReadResource]);
        }
        if offer.prompts {
            out.extend([SideTool::ListPrompts, SideTool::GetPrompt]);
        }
        out
    }

    /// This side tool for the server behind `slot`.
    pub fn bind(self, slot: Arc<Slot>) -> BoundSide {
        BoundSide { kind: self, slot }
    }
}

/// A side tool of one server.
pub(crate) struct BoundSide {
    kind: SideTool,
    slot: Arc<Slot>,
}

#[async_trait]
impl Tool for BoundSide {
    fn spec(&self) -> ToolSpec {
        let server = &self.slot.name;
        let (name, description, schema) = match self.kind {
            SideTool::ListResources => (
                "list_resources",
                format!(
                    "Lists the resources (documents, files, records) MCP server {server} offers, with their URIs."
                ),
                json!({"type": "object", "properties": {}}),
            ),
            SideTool::ReadResource => (
                "read_resource",
                format!("Reads one resource of MCP server {server} by URI."),
                json!({"type": "object", "properties": {"uri": {"type": "string"}}, "required": ["uri"]}),
            ),
            SideTool::ListPrompts => (
                "list_prompts",
                format!(
                    "Lists the prompt templates MCP server {server} offers and their arguments."
                ),
                json!({"type": "object", "properties": {}}),
            ),
            SideTool::GetPrompt => (
                "get_prompt",
                format!("Fills in one prompt template of MCP server {server}."),
                json!({"type": "object", "properties": {"name": {"type": "string"}, "arguments": {"type": "object", "additionalProperties": {"type": "string"}}}, "required": ["name"]}),
            ),
        };
        ToolSpec {
            name: tool_name(server, name),
            description,
            input_schema: schema,
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn place(&self) -> cairn_core::audit::Place {
        cairn_core::audit::Place::Mcp
    }

    async fn call(&self, ctx: &ToolContext, input: Value) -> ToolOutput {
        let conn = match self.slot.live().await {
            Ok(c) => c,
            Err(e) => return ToolOutput::error(e.to_string()),
        };
        let server = self.slot.name.clone();
        let timeout = self.slot.config.timeout();
        let fut = side_call(self.kind, &conn, &input, ctx.output_limit);
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(text)) => ToolOutput::ok(text),
            Ok(Err(SideError::Input(m))) => ToolOutput::error(m),
            Ok(Err(SideError::Service(e))) => failed_call(&self.slot, &conn, &e).await,
            Err(_) => ToolOutput::error(format!(
                "MCP server {server} did not answer within {} s",
                timeout.as_secs()
            )),
        }
    }
}

enum SideError {
    Input(String),
    Service(ServiceError),
}

impl From<ServiceError> for SideError {
    fn from(e: ServiceError) -> Self {
        SideError::Service(e)
    }
}

fn params<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, SideError> {
    serde_json::from_value(v).map_err(|e| SideError::Input(format!("bad arguments: {e}")))
}

async fn side_call(
    kind: SideTool,
    conn: &Conn,
    input: &Value,
    limit: usize,
) -> Result<String, SideError> {
    let peer = conn.service.peer();
    let mut out = CappedOutput::new(limit);
    match kind {
        SideTool::ListResources => {
            for r in peer.list_all_resources().await? {
                let v = serde_json::to_value(&r).unwrap_or(Value::Null);
                let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                out.push(format!("{} {} {}\n", s("uri"), s("name"), s("description")).as_bytes());
            }
        }
        SideTool::ReadResource => {
            let p = params(json!({"uri": input.get("uri").cloned().unwrap_or(Value::Null)}))?;
            let r = serde_json::to_value(peer.read_resource(p).await?).unwrap_or(Value::Null);
            for c in r["contents"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                render::resource(c, &mut out);
                out.push(b"\n");
            }
        }
        SideTool::ListPrompts => {
            for p in peer.list_all_prompts().await? {
                let v = serde_json::to_value(&p).unwrap_or(Value::Null);
                out.push(format!("{v}\n").as_bytes());
            }
        }
        SideTool::GetPrompt => {
            let p = params(json!({
                "name": input.get("name").cloned().unwrap_or(Value::Null),
                "arguments": input.get("arguments").cloned().unwrap_or(json!({})),
            }))?;
            let r = serde_json::to_value(peer.get_prompt(p).await?).unwrap_or(Value::Null);
            for m in r["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                out.push(format!("[{}] ", m["role"].as_str().unwrap_or("")).as_bytes());
                render::content(std::slice::from_ref(&m["content"]), &mut out);
                out.push(b"\n");
            }
        }
    }
    Ok(out.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_cleaned_and_bounded() {
        assert_eq!(tool_name("fs", "read_file"), "fs__read_file");
        assert_eq!(tool_name("ev", "get-sum"), "ev__get-sum");
        // A server cannot offer a built-in's name, nor smuggle characters
        // providers refuse.
        assert_eq!(tool_name("evil", "exec"), "evil__exec");
        assert_eq!(tool_name("s", "a b/c\u{202e}d"), "s__a_b_c_d");
        assert_eq!(tool_name("s", &"x".repeat(200)).len(), 64);
        let long = "é".repeat(3000);
        assert!(bounded(&long).len() <= MAX_DESCRIPTION + 3);
    }
}
