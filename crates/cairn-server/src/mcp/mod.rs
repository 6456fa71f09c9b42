//! cairn as an MCP server: agents and memory as MCP tools (`ask_agent`,
//! `memory_search`, `list_agents`), a run's progress as MCP progress
//! notifications. Served over streamable HTTP at `/mcp` (behind the same
//! API key, Host and Origin checks as the native API) and over stdio by
//! `cairn mcp`.

mod tools;

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// The MCP face of one server process.
#[derive(Clone)]
pub struct CairnMcp {
    state: Arc<AppState>,
    /// Served at `/mcp`, where each request carries its caller (the API's
    /// key check marks it); over stdio the caller is the host's owner.
    over_http: bool,
}

impl CairnMcp {
    /// The handler over `state`, for stdio (the local owner).
    pub fn new(state: Arc<AppState>) -> Self {
        CairnMcp {
            state,
            over_http: false,
        }
    }

    /// Who makes this request: the key the HTTP request carried.
    fn caller(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<crate::api::Caller, ErrorData> {
        if !self.over_http {
            return Ok(crate::api::Caller::Owner);
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<crate::api::Caller>())
            .cloned()
            .ok_or_else(|| ErrorData::invalid_request("this request carries no caller", None))
    }
}

impl ServerHandler for CairnMcp {
    fn get_info(&self) -> ServerConfig {
        let mut caps = ServerCapabilities::default();
        caps.tools = Some(Default::default());
        ServerConfig::new(caps)
            .with_server_info(Implementation::new("cairn", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "cairn runs AI agents. list_agents names them; ask_agent gives one a message and returns its answer (pass the returned session to continue a conversation); memory_search searches what an agent remembers.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::specs()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let call = tools::Call {
            caller: self.caller(&context)?,
            state: &self.state,
            args: &args,
            peer: context.peer.clone(),
            progress: context.meta.get_progress_token(),
            cancel: context.ct.clone(),
        };
        let outcome = match request.name.as_ref() {
            "ask_agent" => tools::ask_agent(call).await,
            "memory_search" => tools::memory_search(call).await,
            "list_agents" => tools::list_agents(call).await,
            other => {
                return Err(ErrorData::invalid_params(
                    Cow::Owned(format!(
                        "no tool named {other:?}; the tools are ask_agent, memory_search and list_agents"
                    )),
                    None,
                ));
            }
        };
        Ok(CallToolResponse::Complete(match outcome {
            Ok((text, structured)) => {
                let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
                r.structured_content = structured;
                r
            }
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        }))
    }
}

/// Serves MCP over this process's stdin and stdout until the client
/// closes stdin or `stop` fires.
pub async fn serve_stdio(state: Arc<AppState>, stop: CancellationToken) -> std::io::Result<()> {
    use rmcp::ServiceExt;
    let service = CairnMcp::new(state)
        .serve_with_ct(rmcp::transport::stdio(), stop.clone())
        .await
        .map_err(|e| std::io::Error::other(format!("MCP initialisation failed: {e}")))?;
    let waiting = service.waiting();
    tokio::select! {
        r = waiting => {
            r.map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        _ = stop.cancelled() => {}
    }
    Ok(())
}

/// The `/mcp` endpoint (streamable HTTP).
pub fn http_service(
    state: Arc<AppState>,
    body_limit: usize,
) -> rmcp::transport::StreamableHttpService<
    CairnMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    // The API's own guard checks Host and Origin before a request gets
    // here, with the server's configured names; rmcp's loopback-only
    // default would refuse names the operator allowed.
    let mut config = rmcp::transport::StreamableHttpServerConfig::default().disable_allowed_hosts();
    config.cancellation_token = state.shutdown.child_token();
    config.max_request_body_bytes = body_limit;
    let factory_state = state;
    rmcp::transport::StreamableHttpService::new(
        move || {
            Ok(CairnMcp {
                state: factory_state.clone(),
                over_http: true,
            })
        },
        Default::default(),
        config,
    )
}
