//! `GET /metrics`: runs by status and the router's decisions (provider,
//! data class, redactions, fallbacks, refusals, cost), in the Prometheus
//! text format.

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
    for (status, n) in state.rt.store.run_counts().await? {
        out.push_str(&format!("cairn_runs{{status=\"{status}\"}} {n}\n"));
    }
    out.push_str(&state.rt.provider.metrics());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
