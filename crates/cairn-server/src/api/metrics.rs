//! `GET /metrics`: runs by status, the router's decisions (provider, data
//! class, redactions, fallbacks, refusals, cost) and MCP servers (up,
//! tools, restarts), in the Prometheus text format.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::native::S;
use crate::error::ApiError;

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): S) -> Result<impl IntoResponse, ApiError> {
    let mut out =
        String::from("# HELP cairn_runs Runs in the store, by status.\n# TYPE cairn_runs gauge\n");
    for (status, n) in state.tables.runs.run_counts().await? {
        out.push_str(&format!("cairn_runs{{status=\"{status}\"}} {n}\n"));
    }
    out.push_str(&state.rt.provider().metrics());
    if let Some(hub) = state.rt.mcp() {
        out.push_str(&mcp_metrics(&hub.status().await));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}

/// MCP servers' state, one series per agent and server.
fn mcp_metrics(servers: &[cairn_tools::mcp::McpServerStatus]) -> String {
    let mut up = String::from(
        "# HELP cairn_mcp_server_up Whether an agent's MCP server is connected.\n# TYPE cairn_mcp_server_up gauge\n",
    );
    let mut tools = String::from(
        "# HELP cairn_mcp_server_tools Tools an MCP server offers.\n# TYPE cairn_mcp_server_tools gauge\n",
    );
    let mut restarts = String::from(
        "# HELP cairn_mcp_server_restarts_total Times an MCP server was started again after it stopped or hung.\n# TYPE cairn_mcp_server_restarts_total counter\n",
    );
    for s in servers {
        let labels = format!("agent=\"{}\",server=\"{}\"", s.agent, s.server);
        up.push_str(&format!(
            "cairn_mcp_server_up{{{labels}}} {}\n",
            u8::from(s.connected)
        ));
        tools.push_str(&format!("cairn_mcp_server_tools{{{labels}}} {}\n", s.tools));
        restarts.push_str(&format!(
            "cairn_mcp_server_restarts_total{{{labels}}} {}\n",
            s.restarts
        ));
    }
    up + &tools + &restarts
}
